package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

func TestNamespaceList(t *testing.T) {
	requireTestBed(t)
	t.Parallel()
	watched := []string{newNamespace(t, bed.ControlPlane, "a"), newNamespace(t, bed.ControlPlane, "b")}
	other := newNamespace(t, bed.ControlPlane, "c")
	caddy := startCaddy(t)
	flags := routerFlags(bed.ControlPlane, strings.Join(watched, ","), caddy.AdminURL, "--host-template={name}-{namespace}")
	startRouter(t, append(flags, e2eutil.RegisterWebhook(t, bed.ControlPlane, watched...).Flags...))

	// the same name in three namespaces; the template keeps the hosts apart
	var exps []expectation
	for _, ns := range watched {
		created := createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("web", 1))
		host := "web-" + ns + "." + baseDomain
		if got := created.Annotations[routing.AnnotationRouteURL]; got != host {
			t.Errorf("webhook annotation of %s/web = %q, want %q", ns, got, host)
		}
		exps = append(exps, expectation{ns: ns, name: "web", host: host, port: httpPort})
	}
	created := createDeployment(t, bed.ControlPlane.Clientset, other, workspace("web", 1))
	if got, ok := created.Annotations[routing.AnnotationRouteURL]; ok {
		t.Errorf("deployment in the unwatched namespace got annotation %s=%q", routing.AnnotationRouteURL, got)
	}

	// routes for the watched namespaces only, with the webhook's hosts
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	waitPodsReady(t, other, "web")
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
}

// manifestRole returns the Role of manifests/base/role.yaml.
func manifestRole(t *testing.T) *rbacv1.Role {
	t.Helper()

	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "manifests", "base", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	var role rbacv1.Role
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatalf("decoding manifests/base/role.yaml: %v", err)
	}
	if len(role.Rules) == 0 {
		t.Fatal("manifests/base/role.yaml has no rules")
	}

	return &role
}

// bindRole creates, in each namespace, a copy of role bound to user.
func bindRole(t *testing.T, client kubernetes.Interface, role *rbacv1.Role, user string, namespaces ...string) {
	t.Helper()
	ctx := t.Context()

	for _, ns := range namespaces {
		r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns}, Rules: role.Rules}
		if _, err := client.RbacV1().Roles(ns).Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		}
		if _, err := client.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// withKubeconfig replaces the --kubeconfig flag in flags.
func withKubeconfig(flags []string, path string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.HasPrefix(f, "--kubeconfig=") {
			f = "--kubeconfig=" + path
		}
		out = append(out, f)
	}

	return out
}

func TestRBACNamespaceList(t *testing.T) {
	requireTestBed(t)
	t.Parallel()
	role := manifestRole(t)
	watched := []string{newNamespace(t, bed.ControlPlane, "a"), newNamespace(t, bed.ControlPlane, "b")}

	user := "router-" + watched[0]
	kubeconfig, err := bed.ControlPlane.AddUser(user, nil)
	if err != nil {
		t.Fatal(err)
	}
	bindRole(t, bed.ControlPlane.Clientset, role, user, watched...)

	t.Run("role in each namespace", func(t *testing.T) {
		caddy := startCaddy(t)
		flags := routerFlags(bed.ControlPlane, strings.Join(watched, ","), caddy.AdminURL)
		startRouter(t, withKubeconfig(flags, kubeconfig))

		// routes, an annotation patch and an Event need the Role's rights
		var exps []expectation
		for i, ns := range watched {
			name := fmt.Sprintf("web-%d", i)
			createDeployment(t, bed.ControlPlane.Clientset, ns, workspace(name, 1))
			exps = append(exps, expect(ns, name))
		}
		bad := workspace("bad", 1)
		bad.Annotations[routing.AnnotationPort] = "70000"
		createDeployment(t, bed.ControlPlane.Clientset, watched[1], bad)

		waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
		waitEvent(t, bed.ControlPlane.Clientset, watched[1], "bad", "Warning", "InvalidPort", `"70000"`)
		waitFor(t, "the route annotation backfilled", setupTimeout, func(ctx context.Context) (bool, error) {
			d, err := bed.ControlPlane.Clientset.AppsV1().Deployments(watched[0]).Get(ctx, exps[0].name, metav1.GetOptions{})
			return err == nil && d.Annotations[routing.AnnotationRouteURL] == exps[0].host, err
		})
	})

	t.Run("namespace without role", func(t *testing.T) {
		outside := newNamespace(t, bed.ControlPlane, "")
		caddy := startCaddy(t)
		flags := routerFlags(bed.ControlPlane, strings.Join(append(watched, outside), ","), caddy.AdminURL)
		router := launchRouter(t, withKubeconfig(flags, kubeconfig))

		line := waitReadyzFails(t, router, "caches", setupTimeout)
		t.Logf("/readyz without rights in %s: %s", outside, line)
	})
}

func TestAllNamespaces(t *testing.T) {
	requireTestBed(t)
	t.Parallel()
	// a control plane of its own, so that the router watches only this
	// test's Deployments
	own := startOwnControlPlane(t)
	client := own.Clientset
	older, newer := newNamespace(t, own, "older"), newNamespace(t, own, "newer")

	// a ClusterRole with the rules of the manifests' Role
	role := manifestRole(t)
	user := "router-all"
	kubeconfig, err := own.AddUser(user, nil)
	if err != nil {
		t.Fatal(err)
	}
	clusterRole := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role.Name}, Rules: role.Rules}
	if _, err := client.RbacV1().ClusterRoles().Create(t.Context(), clusterRole, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	caddy := startCaddy(t)
	startRouter(t, withKubeconfig(routerFlags(own, "*", caddy.AdminURL), kubeconfig))

	// two Deployments that want the same host: the older one has it.
	// Creation times have a resolution of one second, so the newer one is
	// created in a later second.
	first := createDeployment(t, client, older, workspace("web", 1))
	routes := waitRoutes(t, caddy, client, []expectation{expect(older, "web")}, setupTimeout)
	guard := startGuard(t, caddy, routes...)
	time.Sleep(time.Until(first.CreationTimestamp.Add(1100 * time.Millisecond)))
	createDeployment(t, client, newer, workspace("web", 1))
	event := waitEvent(t, client, newer, "web", "Warning", "HostConflict", older+"/web")
	t.Logf("event on the newer deployment: %s", event.Message)
	waitFor(t, "a Ready pod of the newer deployment", setupTimeout, func(ctx context.Context) (bool, error) {
		routes, err := wantRoutes(ctx, client, []expectation{expect(newer, "web")})
		return len(routes) == 1, err
	})
	waitRoutes(t, caddy, client, []expectation{expect(older, "web")}, setupTimeout)

	// the newer one takes over once the older one is deleted
	guard.unguard(routeID(older, "web"))
	deleteDeployment(t, client, older, "web")
	deleted := time.Now()
	took := waitCorrect(t, caddy, deleted, setupTimeout, func(ctx context.Context) ([]e2eutil.Route, error) {
		return wantRoutes(ctx, client, []expectation{expect(newer, "web")})
	})
	t.Logf("the newer deployment took the host over %v after the older one was deleted", took.Round(time.Millisecond))
}

func TestHostConflictSameSecond(t *testing.T) {
	requireTestBed(t)
	t.Parallel()
	ctx := t.Context()
	// the newer Deployment's key sorts first, so a tie goes its way
	suffix := strconv.FormatInt(namespaceSeq.Add(1), 10)
	older, newer := "rel-tie-b-"+suffix, "rel-tie-a-"+suffix
	for _, ns := range []string{older, newer} {
		if err := bed.ControlPlane.CreateNamespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	caddy := startCaddy(t)
	startRouter(t, routerFlags(bed.ControlPlane, older+","+newer, caddy.AdminURL))

	// both created in one second, the older one first
	for attempt := 1; ; attempt++ {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		first := createDeployment(t, bed.ControlPlane.Clientset, older, workspace("web", 1))
		second := createDeployment(t, bed.ControlPlane.Clientset, newer, workspace("web", 1))
		if first.CreationTimestamp.Equal(&second.CreationTimestamp) {
			break
		}
		if attempt == 3 {
			t.Fatal("could not create both Deployments in one second")
		}
		deleteDeployment(t, bed.ControlPlane.Clientset, older, "web")
		deleteDeployment(t, bed.ControlPlane.Clientset, newer, "web")
	}

	waitEvent(t, bed.ControlPlane.Clientset, newer, "web", "Warning", "HostConflict", older+"/web")
	waitFor(t, "a Ready pod of the newer deployment", setupTimeout, func(ctx context.Context) (bool, error) {
		routes, err := wantRoutes(ctx, bed.ControlPlane.Clientset, []expectation{expect(newer, "web")})
		return len(routes) == 1, err
	})
	waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{expect(older, "web")}, setupTimeout)
}

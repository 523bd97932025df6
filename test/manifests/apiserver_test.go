package manifests_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// kubectl runs the test bed's kubectl as the admin user with stdin.
func (b *testBed) kubectl(stdin []byte, args ...string) (stdout, stderr string, err error) {
	out, errOut, err := runCommand("", nil, stdin, b.cp.KubectlPath, append([]string{"--kubeconfig", b.cp.KubeconfigPath}, args...)...)
	return string(out), string(errOut), err
}

// apply applies objs with kubectl and fails the test on error.
func (b *testBed) apply(t *testing.T, objs objects) {
	t.Helper()

	if _, stderr, err := b.kubectl(objs.toYAML(t), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, stderr)
	}
}

// applyRBAC applies the base's router Namespace, ServiceAccount, Role and
// RoleBinding, and nothing else of it.
func (b *testBed) applyRBAC(t *testing.T) {
	t.Helper()

	objs := baseObjects(t)
	b.apply(t, objects{
		objs.find(t, "Namespace", routerNamespace),
		objs.find(t, "ServiceAccount", appName),
		objs.find(t, "Role", appName),
		objs.find(t, "RoleBinding", appName),
	})
}

// serviceAccountConfig returns the admin config impersonating the router's
// ServiceAccount, with the groups the API server gives a ServiceAccount
// token.
func (b *testBed) serviceAccountConfig() *rest.Config {
	config := rest.CopyConfig(b.cp.Config)
	config.Impersonate = rest.ImpersonationConfig{
		UserName: serviceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + routerNamespace, "system:authenticated"},
	}
	return config
}

// serviceAccountKubeconfig writes a kubeconfig that impersonates the
// router's ServiceAccount, for the router binary.
func (b *testBed) serviceAccountKubeconfig(t *testing.T) string {
	t.Helper()

	config, err := clientcmd.LoadFromFile(b.cp.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	impersonation := b.serviceAccountConfig().Impersonate
	for _, user := range config.AuthInfos {
		user.Impersonate = impersonation.UserName
		user.ImpersonateGroups = impersonation.Groups
	}

	path := filepath.Join(t.TempDir(), "router.kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServerDryRun applies the base and the certs/ overlay with
// `kubectl apply --dry-run=server`. The router's Namespace is applied for
// real first, so that its Pod Security labels are in force and a Deployment
// that breaks the restricted standard draws a warning.
func TestServerDryRun(t *testing.T) {
	b := controlPlane(t)
	b.applyRBAC(t)

	dir := checkout(t)
	certgen(t, filepath.Join(dir, "certs"))

	tests := []struct {
		name string
		dir  string
	}{
		{"base", filepath.Join(repoRoot(t), "manifests")},
		{"certs overlay", filepath.Join(dir, "certs")},
		{"all-namespaces component", filepath.Join(repoRoot(t), "test", "manifests", "testdata", "all-namespaces")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDryRun(t, b, tt.dir)
		})
	}
}

// TestServerDryRunCertManager applies the cert-manager overlay with
// `kubectl apply --dry-run=server`: it fails while the cert-manager CRDs are
// missing, and succeeds once a subset of them is installed.
func TestServerDryRunCertManager(t *testing.T) {
	b := controlPlane(t)
	b.applyRBAC(t)
	overlay := filepath.Join(repoRoot(t), "manifests", "cert-manager")
	crds := filepath.Join(repoRoot(t), "test", "manifests", "testdata", "cert-manager-crds.yaml")

	// without cert-manager the API server does not know the kinds
	_, stderr, err := b.kubectl(nil, "apply", "--dry-run=server", "-k", overlay)
	if err == nil {
		t.Fatal("dry run without the cert-manager CRDs succeeded, expected an unknown kind")
	}
	if !strings.Contains(stderr, `no matches for kind "Certificate" in version "cert-manager.io/v1"`) {
		t.Errorf("dry run without the CRDs failed with %q, expected no matches for kind Certificate", stderr)
	}

	// with the CRDs installed it succeeds
	if _, stderr, err := b.kubectl(nil, "apply", "-f", crds); err != nil {
		t.Fatalf("installing the cert-manager CRDs: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { _, _, _ = b.kubectl(nil, "delete", "-f", crds, "--wait=false") })
	if _, stderr, err := b.kubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "-f", crds); err != nil {
		t.Fatalf("waiting for the cert-manager CRDs: %v\n%s", err, stderr)
	}

	checkDryRun(t, b, overlay)
}

// checkDryRun runs `kubectl apply --dry-run=server -k dir` and checks that
// every rendered object is accepted without a warning.
func checkDryRun(t *testing.T, b *testBed, dir string) {
	t.Helper()

	stdout, stderr, err := b.kubectl(nil, "apply", "--dry-run=server", "-k", dir)
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k %s: %v\n%s", dir, err, stderr)
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("dry run printed warnings:\n%s", stderr)
	}

	want := len(render(t, dir))
	if got := strings.Count(stdout, "(server dry run)"); got != want {
		t.Errorf("dry run reported %d objects, expected %d:\n%s", got, want, stdout)
	}
}

// TestServiceAccountRBAC performs, as the router's ServiceAccount, every
// kind of request the router makes and a set of requests outside its needs,
// and checks which the API server allows.
func TestServiceAccountRBAC(t *testing.T) {
	b := controlPlane(t)
	b.applyRBAC(t)
	ctx := t.Context()

	// a Deployment to read and patch, created by the admin
	target := testDeployment("rbac-target", 0)
	if _, err := b.cp.Clientset.AppsV1().Deployments(watchedNamespace).Create(ctx, target, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.cp.Clientset.AppsV1().Deployments(watchedNamespace).Delete(context.Background(), target.Name, metav1.DeleteOptions{})
	})

	sa, err := kubernetes.NewForConfig(b.serviceAccountConfig())
	if err != nil {
		t.Fatal(err)
	}
	deployments := sa.AppsV1().Deployments(watchedNamespace)
	pods := sa.CoreV1().Pods(watchedNamespace)
	events := sa.CoreV1().Events(watchedNamespace)
	annotation := []byte(`{"metadata":{"annotations":{"rbac-test":"patched"}}}`)
	eventName := "rbac-target.rbac-test"

	tests := []struct {
		name    string
		request func(context.Context) error
		allowed bool
	}{
		// what the router does
		{"list deployments", func(ctx context.Context) error { _, err := deployments.List(ctx, metav1.ListOptions{}); return err }, true},
		{"watch deployments", func(ctx context.Context) error { return watchOnce(ctx, deployments.Watch) }, true},
		{"get deployment", func(ctx context.Context) error {
			_, err := deployments.Get(ctx, target.Name, metav1.GetOptions{})
			return err
		}, true},
		{"patch deployment", func(ctx context.Context) error {
			_, err := deployments.Patch(ctx, target.Name, "application/merge-patch+json", annotation, metav1.PatchOptions{})
			return err
		}, true},
		{"list pods", func(ctx context.Context) error { _, err := pods.List(ctx, metav1.ListOptions{}); return err }, true},
		{"watch pods", func(ctx context.Context) error { return watchOnce(ctx, pods.Watch) }, true},
		{"create event", func(ctx context.Context) error {
			_, err := events.Create(ctx, testEvent(eventName, target), metav1.CreateOptions{})
			return err
		}, true},
		{"patch event", func(ctx context.Context) error {
			_, err := events.Patch(ctx, eventName, "application/strategic-merge-patch+json", []byte(`{"count":2}`), metav1.PatchOptions{})
			return err
		}, true},

		// what it must not do
		{"list secrets", func(ctx context.Context) error {
			_, err := sa.CoreV1().Secrets(watchedNamespace).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"get secret", func(ctx context.Context) error {
			_, err := sa.CoreV1().Secrets(watchedNamespace).Get(ctx, "any", metav1.GetOptions{})
			return err
		}, false},
		{"list configmaps", func(ctx context.Context) error {
			_, err := sa.CoreV1().ConfigMaps(watchedNamespace).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"patch pod", func(ctx context.Context) error {
			_, err := pods.Patch(ctx, "any", "application/merge-patch+json", annotation, metav1.PatchOptions{})
			return err
		}, false},
		{"delete pod", func(ctx context.Context) error { return pods.Delete(ctx, "any", metav1.DeleteOptions{}) }, false},
		{"create deployment", func(ctx context.Context) error {
			_, err := deployments.Create(ctx, testDeployment("rbac-created", 0), metav1.CreateOptions{})
			return err
		}, false},
		{"update deployment", func(ctx context.Context) error {
			current, err := b.cp.Clientset.AppsV1().Deployments(watchedNamespace).Get(ctx, target.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			_, err = deployments.Update(ctx, current, metav1.UpdateOptions{})
			return err
		}, false},
		{"delete deployment", func(ctx context.Context) error { return deployments.Delete(ctx, target.Name, metav1.DeleteOptions{}) }, false},
		{"patch deployment status", func(ctx context.Context) error {
			_, err := deployments.Patch(ctx, target.Name, "application/merge-patch+json", []byte(`{"status":{"replicas":0}}`), metav1.PatchOptions{}, "status")
			return err
		}, false},
		{"list events", func(ctx context.Context) error { _, err := events.List(ctx, metav1.ListOptions{}); return err }, false},
		{"list deployments in default", func(ctx context.Context) error {
			_, err := sa.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"list deployments in own namespace", func(ctx context.Context) error {
			_, err := sa.AppsV1().Deployments(routerNamespace).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"list deployments in all namespaces", func(ctx context.Context) error {
			_, err := sa.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"list pods in kube-system", func(ctx context.Context) error {
			_, err := sa.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"create event in default", func(ctx context.Context) error {
			_, err := sa.CoreV1().Events("default").Create(ctx, testEvent("rbac-default", target), metav1.CreateOptions{})
			return err
		}, false},
		{"get namespace", func(ctx context.Context) error {
			_, err := sa.CoreV1().Namespaces().Get(ctx, watchedNamespace, metav1.GetOptions{})
			return err
		}, false},
		{"list nodes", func(ctx context.Context) error {
			_, err := sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			return err
		}, false},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.request(t.Context())

			switch {
			case tt.allowed && err != nil:
				t.Errorf("request failed, expected it to be allowed: %v", err)
			case !tt.allowed && !apierrors.IsForbidden(err):
				t.Errorf("request returned %v, expected Forbidden", err)
			}
		})
	}
}

// watchOnce opens a watch and closes it again.
func watchOnce[W interface{ Stop() }](ctx context.Context, watch func(context.Context, metav1.ListOptions) (W, error)) error {
	w, err := watch(ctx, metav1.ListOptions{TimeoutSeconds: ptr.To[int64](1)})
	if err != nil {
		return err
	}
	w.Stop()
	return nil
}

// testDeployment returns a Deployment with one container that listens on the
// router's default upstream port.
func testDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: watchedNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "workspace",
					Image: "workspace:test",
					Ports: []corev1.ContainerPort{{ContainerPort: 8089}},
				}}},
			},
		},
	}
}

// testEvent returns an Event about d, as the router's recorder writes one.
func testEvent(name string, d *appsv1.Deployment) *corev1.Event {
	now := metav1.NewTime(time.Now())
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "apps/v1", Kind: "Deployment", Namespace: d.Namespace, Name: d.Name,
		},
		Reason:         "RBACTest",
		Message:        "written by the RBAC test",
		Type:           corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "caddy-k8s-router"},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
}

// settingsEnv returns the router's settings from the rendered ConfigMap as
// environment variables, with CADDY_ADMIN_URL replaced by adminURL.
func settingsEnv(t *testing.T, objs objects, adminURL string) []string {
	t.Helper()

	settings := convert[corev1.ConfigMap](t, objs.find(t, "ConfigMap", settingsMap))
	var env []string
	for key, value := range settings.Data {
		if key == "CADDY_ADMIN_URL" {
			value = adminURL
		}
		env = append(env, key+"="+value)
	}
	return env
}

// containsFold reports whether s contains substr, ignoring case.
func containsFold(s, substr string) bool {
	return bytes.Contains(bytes.ToLower([]byte(s)), bytes.ToLower([]byte(substr)))
}

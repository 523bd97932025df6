package reliability

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

const (
	// baseDomain is the base domain of every test router.
	baseDomain = "rel.test"

	// driftInterval is the router's --drift-interval here. A Caddy that
	// restarts without its routes gets them back at the next drift check,
	// so the recovery bound below holds only for intervals well under it.
	// The router's default of 10s does not meet it.
	driftInterval = "2s"

	// recoveryBound is how soon after a fault ends every route must be
	// correct again.
	recoveryBound = 5 * time.Second

	// setupTimeout bounds waits that prepare a test, such as pods becoming
	// Ready on a loaded machine. It is not a measured bound.
	setupTimeout = 90 * time.Second

	// httpPort and altPort are the container ports of every workspace, named
	// "http" and "alt". The kubelet stand-in serves the pod's name on both.
	httpPort = 8080
	altPort  = 9090
)

// namespaceSeq numbers the test namespaces.
var namespaceSeq atomic.Int64

// requireTestBed skips the test when the test-bed binaries are missing
// outside CI.
func requireTestBed(t *testing.T) {
	t.Helper()

	if bed.SkipReason != "" {
		t.Skip(bed.SkipReason)
	}
}

// newNamespace creates a namespace named after the test and suffix on c.
func newNamespace(t *testing.T, c *testbed.ControlPlane, suffix string) string {
	t.Helper()

	name := fmt.Sprintf("rel-%d-%s", namespaceSeq.Add(1), strings.ToLower(t.Name()))
	if suffix != "" {
		name += "-" + suffix
	}
	name = strings.NewReplacer("/", "-", "_", "-").Replace(name)
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}

	if err := c.CreateNamespace(t.Context(), name, nil); err != nil {
		t.Fatal(err)
	}

	return name
}

// env is one test's namespace, Caddy and router on the shared control
// plane.
type env struct {
	ns     string
	caddy  *testbed.Caddy
	router *e2eutil.Router
	// proxy is between the router and Caddy when envOptions.proxy is set.
	proxy *testbed.AdminProxy
	// hook is the router's webhook when envOptions.webhook is set.
	hook e2eutil.Webhook
}

// envOptions changes what newEnv starts.
type envOptions struct {
	// proxy puts a fault-injecting proxy between the router and Caddy.
	proxy bool
	// webhook registers the router's admission webhook for the namespace.
	webhook bool
	// flags are appended to the router's flags.
	flags []string
}

// newEnv skips the test when there is no test bed and runs it in parallel.
// It creates a namespace and starts a Caddy and a router that routes the
// namespace through it, and waits until the router is ready.
func newEnv(t *testing.T, opts envOptions) env {
	t.Helper()
	requireTestBed(t)
	t.Parallel()

	e := env{ns: newNamespace(t, bed.ControlPlane, ""), caddy: startCaddy(t)}
	adminURL := e.caddy.AdminURL
	if opts.proxy {
		e.proxy = startAdminProxy(t, e.caddy)
		adminURL = e.proxy.URL
	}
	flags := routerFlags(bed.ControlPlane, e.ns, adminURL, opts.flags...)
	if opts.webhook {
		e.hook = e2eutil.RegisterWebhook(t, bed.ControlPlane, e.ns)
		flags = append(flags, e.hook.Flags...)
	}
	e.router = startRouter(t, flags)

	return e
}

// startCaddy starts a Caddy with the test bed's default config, stopped
// when the test ends.
func startCaddy(t *testing.T) *testbed.Caddy {
	t.Helper()

	caddy, err := testbed.StartCaddy(t.Context(), testbed.CaddyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	return caddy
}

// routerFlags returns the flags of a test router that watches namespaces
// (a comma-separated list, or *) of c and writes to the Caddy admin
// endpoint adminURL, without the webhook, followed by extra.
func routerFlags(c *testbed.ControlPlane, namespaces, adminURL string, extra ...string) []string {
	flags := []string{
		"--namespace=" + namespaces,
		"--base-domain=" + baseDomain,
		"--kubeconfig=" + c.KubeconfigPath,
		"--caddy-admin=" + adminURL,
		"--drift-interval=" + driftInterval,
		"--webhook-port=0",
		"--log-format=text",
		"--log-level=debug",
	}

	return append(flags, extra...)
}

// startRouter starts the router binary with flags and waits until it is
// ready. When the test ends it stops the router, expects exit code 0, and
// logs the router's output if the test failed.
func startRouter(t *testing.T, flags []string) *e2eutil.Router {
	t.Helper()

	router := launchRouter(t, flags)
	if err := router.WaitReady(t.Context(), setupTimeout); err != nil {
		t.Fatal(err)
	}

	return router
}

// launchRouter starts the router binary with flags, without waiting for it
// to become ready, and stops it when the test ends.
func launchRouter(t *testing.T, flags []string) *e2eutil.Router {
	t.Helper()

	router, err := e2eutil.StartRouter(bed.RouterBinary, flags)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := router.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("router log:\n%s", router.Log())
		}
	})

	return router
}

// workspace returns a Deployment named name with replicas pods whose one
// container declares the ports "http" (8080) and "alt" (9090), with the
// port annotation set to 8080.
func workspace(name string, replicas int32) *appsv1.Deployment {
	d := testbed.Deployment(name, replicas, httpPort)
	container := &d.Spec.Template.Spec.Containers[0]
	container.Ports = append(container.Ports, corev1.ContainerPort{Name: "alt", ContainerPort: altPort})
	d.Annotations = map[string]string{routing.AnnotationPort: strconv.Itoa(httpPort)}

	return d
}

// createDeployment creates d in namespace ns.
func createDeployment(t *testing.T, client kubernetes.Interface, ns string, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()

	created, err := client.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating deployment %s/%s: %v", ns, d.Name, err)
	}

	return created
}

// deleteDeployment deletes the Deployment ns/name and, in the background,
// its ReplicaSets and pods.
func deleteDeployment(t *testing.T, client kubernetes.Interface, ns, name string) {
	t.Helper()

	policy := metav1.DeletePropagationBackground
	err := client.AppsV1().Deployments(ns).Delete(t.Context(), name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil {
		t.Fatalf("deleting deployment %s/%s: %v", ns, name, err)
	}
}

// patchAnnotation sets one annotation of the Deployment ns/name.
func patchAnnotation(t *testing.T, client kubernetes.Interface, ns, name, key, value string) {
	t.Helper()

	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	_, err := client.AppsV1().Deployments(ns).Patch(t.Context(), name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("setting annotation %s=%q on deployment %s/%s: %v", key, value, ns, name, err)
	}
}

// expectation is a Deployment whose route a test expects, with the host
// and port the route must have.
type expectation struct {
	ns, name, host string
	port           int
}

// expect returns the expectation of the Deployment ns/name with the
// default host template and the "http" port.
func expect(ns, name string) expectation {
	return expectation{ns: ns, name: name, host: name + "." + baseDomain, port: httpPort}
}

// routeID returns the Caddy @id the router gives the Deployment ns/name.
func routeID(ns, name string) string {
	return routing.RouteID(routing.DefaultRouteIDPrefix, ns, name)
}

// wantRoutes returns the routes the router must write for exps, sorted by
// id: one per Deployment that has a Ready pod, with one dial per Ready,
// non-terminating pod. It reads the pods from the API server.
func wantRoutes(ctx context.Context, client kubernetes.Interface, exps []expectation) ([]e2eutil.Route, error) {
	var routes []e2eutil.Route
	for _, e := range exps {
		d, err := client.AppsV1().Deployments(e.ns).Get(ctx, e.name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("getting deployment %s/%s: %w", e.ns, e.name, err)
		}
		selector := metav1.FormatLabelSelector(d.Spec.Selector)
		pods, err := client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("listing pods of %s/%s: %w", e.ns, e.name, err)
		}

		route := e2eutil.Route{ID: routeID(e.ns, e.name), Hosts: []string{e.host}}
		for i := range pods.Items {
			if ip := readyIP(&pods.Items[i]); ip != "" {
				route.Dials = append(route.Dials, net.JoinHostPort(ip, strconv.Itoa(e.port)))
			}
		}
		if len(route.Dials) == 0 {
			continue
		}
		slices.Sort(route.Dials)
		routes = append(routes, route)
	}
	slices.SortFunc(routes, func(a, b e2eutil.Route) int { return strings.Compare(a.ID, b.ID) })

	return routes, nil
}

// readyIP returns the IP of a Ready, non-terminating pod, or "".
func readyIP(pod *corev1.Pod) string {
	if pod.DeletionTimestamp != nil {
		return ""
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return pod.Status.PodIP
		}
	}

	return ""
}

// ownedRoutes returns the routes the router owns in caddy, sorted by id.
func ownedRoutes(ctx context.Context, caddy *testbed.Caddy) ([]e2eutil.Route, error) {
	routes, _, err := e2eutil.ReadRoutes(ctx, caddy, "srv0")
	if err != nil {
		return nil, err
	}

	return e2eutil.Owned(routes, routing.DefaultRouteIDPrefix), nil
}

// waitFor polls cond every 50ms until it returns true, and fails the test
// with what when timeout passes first or cond returns an error.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()

	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// waitRoutes waits until caddy's owned routes equal the routes of exps,
// and returns them. It fails the test with the difference after timeout.
func waitRoutes(t *testing.T, caddy *testbed.Caddy, client kubernetes.Interface, exps []expectation, timeout time.Duration) []e2eutil.Route {
	t.Helper()

	var want []e2eutil.Route
	var diff string
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		if want, err = wantRoutes(ctx, client, exps); err != nil {
			return false, err
		}
		if len(want) != len(exps) {
			diff = fmt.Sprintf("%d of %d deployments have a Ready pod", len(want), len(exps))
			return false, nil
		}
		got, err := ownedRoutes(ctx, caddy)
		if err != nil {
			diff = err.Error()
			return false, nil
		}
		diff = e2eutil.DiffRoutes(got, want)
		return diff == "", nil
	})
	if err != nil {
		t.Fatalf("waiting for the routes of %d deployments: %v; last difference:\n%s", len(exps), err, diff)
	}

	return want
}

// waitRecovered polls caddy until its owned routes equal want, and fails
// the test if they are not equal by since+recoveryBound. It returns the
// time from since until they were first seen equal.
func waitRecovered(t *testing.T, caddy *testbed.Caddy, since time.Time, want func(ctx context.Context) ([]e2eutil.Route, error)) time.Duration {
	t.Helper()

	return waitCorrect(t, caddy, since, recoveryBound, want)
}

// waitCorrect polls caddy until its owned routes equal want, and fails the
// test if they are not equal by since+limit. It returns the time from since
// until they were first seen equal.
func waitCorrect(t *testing.T, caddy *testbed.Caddy, since time.Time, limit time.Duration, want func(ctx context.Context) ([]e2eutil.Route, error)) time.Duration {
	t.Helper()

	var diff string
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		got, err := ownedRoutes(ctx, caddy)
		var wanted []e2eutil.Route
		if err == nil {
			wanted, err = want(ctx)
		}
		cancel()

		elapsed := time.Since(since)
		if err == nil {
			if diff = e2eutil.DiffRoutes(got, wanted); diff == "" {
				return elapsed
			}
		} else {
			diff = err.Error()
		}
		if elapsed > limit {
			t.Fatalf("routes still not correct %v after the fault ended (limit %v); difference:\n%s", elapsed.Round(time.Millisecond), limit, diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readyz returns the status and body of the router's /readyz, or status 0
// and the error.
func readyz(t *testing.T, router *e2eutil.Router) (int, string) {
	status, body, err := router.Health(t.Context(), "/readyz")
	if err != nil {
		return 0, err.Error()
	}

	return status, body
}

// waitReadyzFails waits until /readyz returns 503 with a line that starts
// with check+": ", and returns that line.
func waitReadyzFails(t *testing.T, router *e2eutil.Router, check string, timeout time.Duration) string {
	t.Helper()

	var line, last string
	waitFor(t, "/readyz to report the "+check+" check", timeout, func(context.Context) (bool, error) {
		status, body := readyz(t, router)
		last = fmt.Sprintf("%d %q", status, body)
		if status != http.StatusServiceUnavailable {
			return false, nil
		}
		for l := range strings.SplitSeq(body, "\n") {
			if strings.HasPrefix(l, check+": ") {
				line = l
				return true, nil
			}
		}
		return false, nil
	})
	if line == "" {
		t.Fatalf("/readyz never reported %s; last response: %s", check, last)
	}

	return line
}

// waitEvent waits for an Event with reason on the Deployment ns/name whose
// message contains text, and returns it.
func waitEvent(t *testing.T, client kubernetes.Interface, ns, name, eventType, reason, text string) corev1.Event {
	t.Helper()

	selector := fields.Set{
		"involvedObject.kind": "Deployment",
		"involvedObject.name": name,
		"reason":              reason,
	}.AsSelector().String()

	var found corev1.Event
	var seen []string
	waitFor(t, fmt.Sprintf("a %s Event on %s/%s containing %q", reason, ns, name, text), setupTimeout, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			return false, err
		}
		seen = seen[:0]
		for _, e := range list.Items {
			seen = append(seen, e.Message)
			if e.Type == eventType && strings.Contains(e.Message, text) {
				found = e
				return true, nil
			}
		}
		return false, nil
	})

	return found
}

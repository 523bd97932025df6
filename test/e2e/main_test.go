// Package e2e runs the router binary against the test bed: a real
// kube-apiserver, etcd and kube-controller-manager, the kubelet stand-in,
// and a real Caddy. Every test gets its own namespace, Caddy and router.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// baseDomain is the base domain every test router serves.
const baseDomain = "e2e.test"

var (
	// cp is the control plane shared by the package's tests.
	cp *testbed.ControlPlane
	// kubelet runs the pods of every namespace.
	kubelet *testbed.Kubelet
	// routerBinary is the router built for this run.
	routerBinary string
	// skipReason is set when the test-bed binaries are missing outside CI.
	skipReason string
	// namespaceSeq numbers the test namespaces.
	namespaceSeq atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "e2e-router-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	routerBinary, err = e2eutil.BuildRouter(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	cp, err = testbed.StartControlPlane(ctx, testbed.ControlPlaneOptions{ControllerManager: true})
	if testbed.SkipIfMissing(err) {
		skipReason = err.Error()
		return m.Run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()

	kubelet, err = testbed.StartKubelet(ctx, cp.Clientset, testbed.KubeletOptions{HoldTermination: false})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer kubelet.Stop()

	return m.Run()
}

// env is one test's namespace, Caddy and router.
type env struct {
	t         *testing.T
	ns        string
	client    kubernetes.Interface
	caddy     *testbed.Caddy
	router    *testbed.Process
	healthURL string
	args      []string
}

// routerOptions changes how newEnv starts the router.
type routerOptions struct {
	// extraArgs are appended to the router's flags.
	extraArgs []string
	// noWebhook starts the router without its admission webhook.
	noWebhook bool
	// caddy, when set, is used instead of a new Caddy.
	caddy *testbed.Caddy
}

// newEnv creates a namespace, starts Caddy and the router for it, and waits
// until the router is ready.
func newEnv(t *testing.T, opts routerOptions) *env {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}

	ctx := t.Context()
	e := &env{t: t, client: cp.Clientset}
	e.ns = fmt.Sprintf("e2e-%d-%s", namespaceSeq.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(e.ns) > 63 {
		e.ns = strings.TrimRight(e.ns[:63], "-")
	}
	if err := cp.CreateNamespace(ctx, e.ns, nil); err != nil {
		t.Fatal(err)
	}

	e.caddy = opts.caddy
	if e.caddy == nil {
		caddy, err := testbed.StartCaddy(ctx, testbed.CaddyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = caddy.Stop() })
		e.caddy = caddy
	}

	healthAddr, err := testbed.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	e.healthURL = "http://" + healthAddr
	e.args = []string{
		"--namespace=" + e.ns,
		"--base-domain=" + baseDomain,
		"--kubeconfig=" + cp.KubeconfigPath,
		"--caddy-admin=" + e.caddy.AdminURL,
		"--health-addr=" + healthAddr,
		"--log-format=text",
		"--log-level=debug",
		"--drift-interval=1s",
	}
	if opts.noWebhook {
		e.args = append(e.args, "--webhook-port=0")
	} else {
		e.args = append(e.args, e2eutil.RegisterWebhook(t, cp, e.ns).Flags...)
	}
	e.args = append(e.args, opts.extraArgs...)

	e.startRouter()
	e.waitReady()

	return e
}

// startRouter runs the router binary with e.args.
func (e *env) startRouter() {
	t := e.t
	router, err := testbed.StartProcess(routerBinary, e.args, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.router = router
	t.Cleanup(func() {
		if router.ExitCode() == -1 {
			if err := router.Stop(10 * time.Second); err != nil {
				t.Error(err)
			}
			if code := router.ExitCode(); code != 0 {
				t.Errorf("router exited with code %d after SIGTERM, want 0", code)
			}
		}
		if t.Failed() {
			t.Logf("router log:\n%s", router.Log())
		}
	})
}

// waitReady waits until /readyz returns 200.
func (e *env) waitReady() {
	e.t.Helper()
	e.poll("router ready", 60*time.Second, func() (bool, error) {
		status, _ := e.health("/readyz")
		return status == http.StatusOK, nil
	})
}

// health sends a GET to the router's health server.
func (e *env) health(path string) (int, string) {
	return e.healthBody(path)
}

// healthBody sends a GET to the router's health server and reads the whole
// body.
func (e *env) healthBody(path string) (int, string) {
	resp, err := http.Get(e.healthURL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err.Error()
	}

	return resp.StatusCode, string(body)
}

// poll calls cond until it returns true, failing the test after timeout
// with what.
func (e *env) poll(what string, timeout time.Duration, cond func() (bool, error)) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(e.t.Context(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// host returns the host of a Deployment.
func host(name string) string {
	return name + "." + baseDomain
}

// get sends a GET through Caddy for host.
func (e *env) get(host string) (int, string) {
	status, body, err := e.caddy.Get(e.t.Context(), host, "/")
	if err != nil {
		return 0, err.Error()
	}

	return status, body
}

// waitServedBy waits until one of the pods responds to a GET for host,
// and returns its body.
func (e *env) waitServedBy(host string, timeout time.Duration) string {
	e.t.Helper()
	var body string
	e.poll("a pod to answer for "+host, timeout, func() (bool, error) {
		var status int
		status, body = e.get(host)
		return status == http.StatusOK, nil
	})

	return strings.TrimSpace(body)
}

// waitCatchAll waits until host falls through to Caddy's catch-all 404.
func (e *env) waitCatchAll(host string, timeout time.Duration) {
	e.t.Helper()
	e.poll(host+" to fall through to the catch-all", timeout, func() (bool, error) {
		status, body := e.get(host)
		return status == http.StatusNotFound && body == testbed.CatchAllBody, nil
	})
}

// routes returns Caddy's srv0 routes, decoded loosely, and the Etag.
func (e *env) routes() ([]map[string]any, string) {
	e.t.Helper()
	status, etag, body, err := e.caddy.Admin(e.t.Context(), http.MethodGet, "/config/apps/http/servers/srv0/routes", nil)
	if err != nil || status != http.StatusOK {
		e.t.Fatalf("reading Caddy's routes: status %d, %v, %s", status, err, body)
	}

	var routes []map[string]any
	if err := json.Unmarshal(body, &routes); err != nil {
		e.t.Fatal(err)
	}

	return routes, etag
}

// routeIDs returns the @id of every route in Caddy's srv0.
func (e *env) routeIDs() []string {
	routes, _ := e.routes()
	ids := make([]string, 0, len(routes))
	for _, r := range routes {
		id, _ := r["@id"].(string)
		ids = append(ids, id)
	}

	return ids
}

// routeID returns the id the router gives the Deployment name.
func (e *env) routeID(name string) string {
	return "k8s-router." + e.ns + "." + name
}

// createDeployment creates a Deployment of replicas pods serving on port,
// with the port annotation set to portAnnotation unless it is empty.
func (e *env) createDeployment(name string, replicas int32, port int32, portAnnotation string) *appsv1.Deployment {
	e.t.Helper()
	d := deployment(name, replicas, port, portAnnotation)
	created, err := e.client.AppsV1().Deployments(e.ns).Create(e.t.Context(), d, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("creating deployment %s: %v", name, err)
	}

	return created
}

// scale sets the replicas of a Deployment.
func (e *env) scale(name string, replicas int32) {
	e.t.Helper()
	deployments := e.client.AppsV1().Deployments(e.ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := deployments.GetScale(e.t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = replicas
		_, err = deployments.UpdateScale(e.t.Context(), name, scale, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatalf("scaling deployment %s to %d: %v", name, replicas, err)
	}
}

// readyPods returns the names of the Ready pods of the Deployment name.
func (e *env) readyPods(name string) []string {
	e.t.Helper()
	list, err := e.client.CoreV1().Pods(e.ns).List(e.t.Context(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		e.t.Fatal(err)
	}

	var names []string
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				names = append(names, p.Name)
			}
		}
	}

	return names
}

func deployment(name string, replicas int32, port int32, portAnnotation string) *appsv1.Deployment {
	d := testbed.Deployment(name, replicas, port)
	if portAnnotation != "" {
		d.Annotations = map[string]string{"gitspace.caddy.default.port": portAnnotation}
	}

	return d
}

package reliability

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// scale sets the replicas of the Deployment ns/name.
func scale(t *testing.T, ns, name string, replicas int32) {
	t.Helper()

	deployments := bed.ControlPlane.Clientset.AppsV1().Deployments(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := deployments.GetScale(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = replicas
		_, err = deployments.UpdateScale(t.Context(), name, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("scaling deployment %s/%s to %d: %v", ns, name, replicas, err)
	}
}

// waitReadyPods waits until the Deployment ns/name has n Ready pods.
func waitReadyPods(t *testing.T, ns, name string, n int) {
	t.Helper()

	waitFor(t, "Ready pods of "+ns+"/"+name, setupTimeout, func(ctx context.Context) (bool, error) {
		routes, err := wantRoutes(ctx, bed.ControlPlane.Clientset, []expectation{expect(ns, name)})
		return len(routes) == 1 && len(routes[0].Dials) == n, err
	})
}

func TestRouterKilledDuringWrite(t *testing.T) {
	e := newEnv(t, envOptions{proxy: true})
	ns, caddy, proxy, router := e.ns, e.caddy, e.proxy, e.router

	exps := []expectation{expect(ns, "kept"), expect(ns, "scaled")}
	for _, x := range exps {
		createDeployment(t, bed.ControlPlane.Clientset, ns, workspace(x.name, 1))
	}
	routes := waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	startGuard(t, caddy, routes...)

	// kill the router with SIGKILL as its next write reaches Caddy. The
	// proxy then lets the write land, after the writer is gone.
	killed := make(chan string)
	var once sync.Once
	proxy.OnWrite(func(method, path string) {
		once.Do(func() {
			router.Kill()
			killed <- method + " " + path
		})
	})
	scale(t, ns, "scaled", 2)
	select {
	case write := <-killed:
		t.Logf("router killed during %s", write)
	case <-time.After(setupTimeout):
		t.Fatal("no write of the router reached Caddy")
	}
	proxy.OnWrite(nil)

	// a change while the router is down
	exps = append(exps, expect(ns, "added"))
	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("added", 1))
	waitPodsReady(t, ns, "added")
	waitReadyPods(t, ns, "scaled", 2)

	// start it again
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	took := waitRecovered(t, caddy, started, routesOf(exps))
	t.Logf("recovery: routes correct %v after the router was started again", took.Round(time.Millisecond))

	if err := router.WaitReady(t.Context(), setupTimeout); err != nil {
		t.Error(err)
	}
}

func TestRouterRestartKeepsLastValidPort(t *testing.T) {
	e := newEnv(t, envOptions{})
	ns, caddy, router := e.ns, e.caddy, e.router

	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("web", 1))
	routes := waitRoutes(t, caddy, bed.ControlPlane.Clientset, []expectation{expect(ns, "web")}, setupTimeout)
	startGuard(t, caddy, routes...)

	// after a bad edit the route stays at the last valid port
	patchAnnotation(t, bed.ControlPlane.Clientset, ns, "web", routing.AnnotationPort, "70000")
	waitEvent(t, bed.ControlPlane.Clientset, ns, "web", "Warning", "InvalidPort", "keeping the last valid port 8080")

	// a crash and a start while the annotation is still bad, and the guard
	// fails the test if the route goes
	router.Kill()
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	if err := router.WaitReady(t.Context(), setupTimeout); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two route syncs after the start", setupTimeout, func(context.Context) (bool, error) {
		return successfulSyncs(t, router) >= 2, nil
	})
}

// successfulSyncs returns how many route syncs with Caddy the current
// router process has finished without error, written or unchanged, from
// its /metrics, or 0 when /metrics cannot be read.
func successfulSyncs(t *testing.T, router *e2eutil.Router) int {
	return syncMetric(t, router, "written") + syncMetric(t, router, "unchanged")
}

// routerWrites returns how many route syncs of the current router process
// wrote to Caddy, from its /metrics, or 0 when /metrics cannot be read.
func routerWrites(t *testing.T, router *e2eutil.Router) int {
	return syncMetric(t, router, "written")
}

// syncMetric returns the value of caddy_k8s_router_route_syncs_total with
// the given result label from the router's /metrics, or 0.
func syncMetric(t *testing.T, router *e2eutil.Router, result string) int {
	status, body, err := router.Health(t.Context(), "/metrics")
	if err != nil || status != http.StatusOK {
		return 0
	}

	prefix := `caddy_k8s_router_route_syncs_total{result="` + result + `"} `
	for line := range strings.SplitSeq(body, "\n") {
		if value, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.ParseFloat(value, 64)
			if err == nil {
				return int(n)
			}
		}
	}

	return 0
}

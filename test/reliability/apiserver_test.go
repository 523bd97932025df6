package reliability

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// outageDuration is how long TestAPIServerOutage keeps the API server
// stopped: long enough for every watch to break and for client-go's
// reflectors to back off several times.
const outageDuration = 60 * time.Second

// readyzGrace is how long after the API server is killed /readyz may still
// return 200: the router notices when its watches break and its next list or
// watch fails.
const readyzGrace = 3 * time.Second

// startOwnControlPlane starts a control plane and a kubelet stand-in for
// one test, so that stopping its API server leaves the other tests alone.
func startOwnControlPlane(t *testing.T) *testbed.ControlPlane {
	t.Helper()

	own, err := testbed.StartControlPlane(t.Context(), testbed.ControlPlaneOptions{ControllerManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := own.Stop(); err != nil {
			t.Error(err)
		}
	})

	stand, err := testbed.StartKubelet(t.Context(), own.Clientset, testbed.KubeletOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stand.Stop)

	return own
}

func TestAPIServerOutage(t *testing.T) {
	requireTestBed(t)
	t.Parallel()
	own := startOwnControlPlane(t)
	client := own.Clientset
	ns := newNamespace(t, own, "")
	caddy := startCaddy(t)
	router := startRouter(t, routerFlags(own, ns, caddy.AdminURL))

	exps := []expectation{expect(ns, "kept"), expect(ns, "moved"), expect(ns, "deleted")}
	for _, e := range exps {
		createDeployment(t, client, ns, workspace(e.name, 1))
	}
	routes := waitRoutes(t, caddy, client, exps, setupTimeout)
	guard := startGuard(t, caddy, routes...)

	// kill the API server, which breaks every watch
	if err := own.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	readyzSeen := map[string]bool{}
	for time.Since(stopped) < outageDuration {
		status, body := readyz(t, router)
		if time.Since(stopped) > readyzGrace {
			readyzSeen[http.StatusText(status)+": "+body] = true
		}
		time.Sleep(time.Second)
	}
	if err := own.StartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	recovered := time.Now()
	t.Logf("API server stopped for %v; /readyz during the outage: %q", recovered.Sub(stopped).Round(time.Millisecond), keys(readyzSeen))

	// changes that only the router must see: a deleted Deployment and a
	// new port, both through a re-listed or re-opened watch
	guard.unguard(routeID(ns, "deleted"))
	deleteDeployment(t, client, ns, "deleted")
	patchAnnotation(t, client, ns, "moved", routing.AnnotationPort, "alt")
	after := []expectation{exps[0], {ns: ns, name: "moved", host: exps[1].host, port: altPort}}

	took := waitCorrect(t, caddy, recovered, recoveryBound, func(ctx context.Context) ([]e2eutil.Route, error) {
		return wantRoutes(ctx, client, after)
	})
	t.Logf("recovery: routes correct %v after the API server was back", took.Round(time.Millisecond))

	if err := router.WaitReady(t.Context(), setupTimeout); err != nil {
		t.Error(err)
	}

	t.Run("recovery within bound", func(t *testing.T) {
		if took > recoveryBound {
			t.Errorf("routes correct %v after the API server was back, want at most %v", took, recoveryBound)
		}
	})

	t.Run("readyz reports outage", func(t *testing.T) {
		for body := range readyzSeen {
			if !strings.Contains(body, "Service Unavailable") || !strings.Contains(body, "apiserver: ") {
				t.Errorf("/readyz during the outage returned %q, want 503 naming the API server", body)
			}
		}
	})
}

// keys returns the keys of m.
func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}

	return out
}

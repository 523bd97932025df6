package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// waitPodsReady waits until the Deployment ns/name has a Ready pod with an
// IP, so that a route for it is due.
func waitPodsReady(t *testing.T, ns, name string) {
	t.Helper()

	waitFor(t, "a Ready pod of "+ns+"/"+name, setupTimeout, func(ctx context.Context) (bool, error) {
		routes, err := wantRoutes(ctx, bed.ControlPlane.Clientset, []expectation{expect(ns, name)})
		return len(routes) == 1, err
	})
}

// routesOf returns a want function for waitRecovered: the routes of exps.
func routesOf(exps []expectation) func(ctx context.Context) ([]e2eutil.Route, error) {
	return func(ctx context.Context) ([]e2eutil.Route, error) {
		return wantRoutes(ctx, bed.ControlPlane.Clientset, exps)
	}
}

func TestCaddyRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	ns, caddy, router := e.ns, e.caddy, e.router

	exps := []expectation{expect(ns, "one"), expect(ns, "two")}
	for _, x := range exps {
		createDeployment(t, bed.ControlPlane.Clientset, ns, workspace(x.name, 1))
	}
	routes := waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	guard := startGuard(t, caddy, routes...)

	// kill Caddy, and its routes are gone with it
	guard.pause()
	caddy.Kill()
	line := waitReadyzFails(t, router, "caddy", setupTimeout)
	t.Logf("/readyz while Caddy is down: %s", line)
	if !strings.Contains(line, "caddy admin API unreachable") {
		t.Errorf("/readyz line %q does not say that Caddy's admin API is unreachable", line)
	}

	// a change that needs a write while Caddy is down
	exps = append(exps, expect(ns, "three"))
	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("three", 1))
	waitPodsReady(t, ns, "three")
	line = waitReadyzFails(t, router, "route-sync", setupTimeout)
	t.Logf("/readyz after a failed write: %s", line)

	// start Caddy again with its base config, as without --resume
	if err := caddy.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	took := waitRecovered(t, caddy, restarted, routesOf(exps))
	t.Logf("recovery: routes correct %v after Caddy was back", took.Round(time.Millisecond))

	// the routes stay through the next drift checks
	routes, err := wantRoutes(t.Context(), bed.ControlPlane.Clientset, exps)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		guard.guard(r)
	}
	guard.resume()
	if err := router.WaitReady(t.Context(), setupTimeout); err != nil {
		t.Error(err)
	}
	syncs := successfulSyncs(t, router)
	waitFor(t, "two more route syncs", setupTimeout, func(context.Context) (bool, error) {
		return successfulSyncs(t, router) >= syncs+2, nil
	})
}

// startAdminProxy starts a fault-injecting proxy in front of caddy's admin
// API, closed when the test ends.
func startAdminProxy(t *testing.T, caddy *testbed.Caddy) *testbed.AdminProxy {
	t.Helper()

	proxy, err := testbed.StartAdminProxy(caddy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	return proxy
}

func TestCaddyAdminFaults(t *testing.T) {
	e := newEnv(t, envOptions{proxy: true})
	ns, caddy, proxy, router := e.ns, e.caddy, e.proxy, e.router

	exps := []expectation{expect(ns, "kept")}
	createDeployment(t, bed.ControlPlane.Clientset, ns, workspace("kept", 1))
	routes := waitRoutes(t, caddy, bed.ControlPlane.Clientset, exps, setupTimeout)
	startGuard(t, caddy, routes...)

	tests := []struct {
		fault testbed.Fault
		// lasting is how long the fault lasts. A hang must outlast the
		// router's 10s admin request timeout, so that writes time out.
		lasting time.Duration
		// readyz is a text the caddy line of /readyz must contain.
		readyz string
	}{
		{fault: testbed.FaultError, lasting: 5 * time.Second, readyz: "status 500"},
		{fault: testbed.FaultHang, lasting: 12 * time.Second, readyz: "timed out"},
	}
	for i, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			faulted := proxy.Faulted()
			proxy.SetFault(tt.fault)
			start := time.Now()

			line := waitReadyzFails(t, router, "caddy", setupTimeout)
			t.Logf("/readyz during the fault: %s", line)
			if !strings.Contains(line, tt.readyz) {
				t.Errorf("/readyz line %q does not contain %q", line, tt.readyz)
			}

			// a change that needs a write while the fault lasts
			name := fmt.Sprintf("added-%d", i)
			exps = append(exps, expect(ns, name))
			createDeployment(t, bed.ControlPlane.Clientset, ns, workspace(name, 1))
			waitPodsReady(t, ns, name)
			time.Sleep(time.Until(start.Add(tt.lasting)))

			proxy.SetFault(testbed.FaultNone)
			ended := time.Now()
			if proxy.Faulted() == faulted {
				t.Error("no request got the injected fault")
			}
			took := waitRecovered(t, caddy, ended, routesOf(exps))
			t.Logf("recovery: routes correct %v after the fault ended", took.Round(time.Millisecond))

			if err := router.WaitReady(t.Context(), setupTimeout); err != nil {
				t.Error(err)
			}
		})
	}
}

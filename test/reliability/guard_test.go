package reliability

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// guardInterval is how often a routeGuard reads Caddy's routes.
const guardInterval = 50 * time.Millisecond

// routeGuard reads a Caddy's routes every guardInterval while a fault is
// injected, and records each read at which a guarded route is missing, has
// another host, or has no upstream. Guarded routes belong to live, Ready
// Deployments that the test neither deletes nor renames, so the router
// must keep them whatever the fault.
type routeGuard struct {
	caddy  *testbed.Caddy
	cancel context.CancelFunc
	done   chan struct{}

	// mu guards the fields below it.
	mu sync.Mutex
	// guarded maps the id of each guarded route to its host.
	guarded map[string]string
	// paused stops the checks while Caddy itself is down.
	paused     bool
	reads      int
	violations []string
}

// startGuard starts guarding routes in caddy until the test ends. The test
// fails at its end if any violation was recorded.
func startGuard(t *testing.T, caddy *testbed.Caddy, routes ...e2eutil.Route) *routeGuard {
	t.Helper()

	ctx, cancel := context.WithCancel(context.Background())
	g := &routeGuard{caddy: caddy, cancel: cancel, done: make(chan struct{}), guarded: map[string]string{}}
	for _, r := range routes {
		g.guard(r)
	}

	go g.run(ctx)
	t.Cleanup(func() {
		reads, violations := g.stop()
		t.Logf("route guard: %d reads of Caddy's routes, %d with a guarded route missing", reads, len(violations))
		for _, v := range violations {
			t.Errorf("guarded route lost: %s", v)
		}
	})

	return g
}

// guard adds r to the guarded routes.
func (g *routeGuard) guard(r e2eutil.Route) {
	g.mu.Lock()
	defer g.mu.Unlock()

	g.guarded[r.ID] = r.Hosts[0]
}

// unguard removes the route with id from the guarded routes, before the
// test changes its Deployment.
func (g *routeGuard) unguard(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()

	delete(g.guarded, id)
}

// pause stops the checks, for while Caddy itself is down.
func (g *routeGuard) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()

	g.paused = true
}

// resume starts the checks again after pause.
func (g *routeGuard) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()

	g.paused = false
}

// stop ends the checks and returns the number of reads and the violations.
func (g *routeGuard) stop() (int, []string) {
	g.cancel()
	<-g.done

	g.mu.Lock()
	defer g.mu.Unlock()

	return g.reads, slices.Clone(g.violations)
}

// run reads the routes until ctx ends.
func (g *routeGuard) run(ctx context.Context) {
	defer close(g.done)

	ticker := time.NewTicker(guardInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}

		g.check(ctx)
	}
}

// check reads the routes once and records what is wrong.
func (g *routeGuard) check(ctx context.Context) {
	g.mu.Lock()
	paused := g.paused
	g.mu.Unlock()
	if paused {
		return
	}

	readCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	routes, _, err := e2eutil.ReadRoutes(readCtx, g.caddy, "srv0")
	cancel()
	if ctx.Err() != nil {
		return
	}

	g.mu.Lock()
	defer g.mu.Unlock()

	if g.paused {
		return
	}
	g.reads++
	now := time.Now().Format("15:04:05.000")
	if err != nil {
		g.violations = append(g.violations, fmt.Sprintf("%s: reading Caddy's routes failed: %v", now, err))
		return
	}

	byID := make(map[string]e2eutil.Route, len(routes))
	for _, r := range routes {
		byID[r.ID] = r
	}
	for id, host := range g.guarded {
		r, ok := byID[id]
		switch {
		case !ok:
			g.violations = append(g.violations, fmt.Sprintf("%s: route %s is missing", now, id))
		case !slices.Equal(r.Hosts, []string{host}):
			g.violations = append(g.violations, fmt.Sprintf("%s: route %s has hosts %v, want [%s]", now, id, r.Hosts, host))
		case len(r.Dials) == 0:
			g.violations = append(g.violations, fmt.Sprintf("%s: route %s has no upstream", now, id))
		}
	}
}

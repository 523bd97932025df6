package watch

import (
	"context"
	"sync"
	"testing"
	"time"
)

// probingWriter is a fakeWriter that also returns FirstRouteID from its
// current routes, and can be made to forget them, as a restarted Caddy does.
type probingWriter struct {
	*fakeWriter
	probes sync.Map
}

func (w *probingWriter) FirstRouteID(context.Context) (string, error) {
	w.probes.Store("called", true)
	routes, _ := w.currentRoutes()
	if len(routes) == 0 {
		return "catch-all", nil
	}

	return routes[0].ID, nil
}

// forget drops the current routes.
func (w *probingWriter) forget() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.current = nil
}

func TestProbeRewritesLostRoutes(t *testing.T) {
	writer := &probingWriter{fakeWriter: &fakeWriter{}}
	f := startController(t, writer, Options{DriftInterval: time.Hour, ProbeInterval: 20 * time.Millisecond},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
	)
	want := testRoute("a", "10.0.0.1:8080")
	f.waitForRoutes(want)

	// Caddy restarts without --resume
	writer.forget()

	f.waitForRoutes(want)
	if _, called := writer.probes.Load("called"); !called {
		t.Error("FirstRouteID was never called")
	}
}

func TestProbeOffWaitsForDrift(t *testing.T) {
	writer := &probingWriter{fakeWriter: &fakeWriter{}}
	f := startController(t, writer, Options{DriftInterval: time.Hour, ProbeInterval: -1},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
	)
	f.waitForRoutes(testRoute("a", "10.0.0.1:8080"))

	writer.forget()
	time.Sleep(100 * time.Millisecond)

	if _, called := writer.probes.Load("called"); called {
		t.Error("FirstRouteID was called with the probe turned off")
	}
	if routes, _ := writer.currentRoutes(); len(routes) != 0 {
		t.Errorf("routes = %v, want none until the next drift check", routes)
	}
}

package caddyapi

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegisterMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()

	if err := RegisterMetrics(reg); err != nil {
		t.Fatalf("RegisterMetrics: %v", err)
	}
	if err := RegisterMetrics(reg); err == nil {
		t.Error("second RegisterMetrics with the same registry returned no error")
	}
}

func TestMetricsCountRequests(t *testing.T) {
	// the first PATCH gets 412, the second succeeds
	fake := newFakeCaddy(t, catchAllJSON)
	var conflicted atomic.Bool
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && conflicted.CompareAndSwap(false, true) {
			writeCaddyError(w, http.StatusPreconditionFailed, "If-Match header did not match current config hash")
			return true
		}
		return false
	}
	c := fake.client(t, Config{})

	// the collectors are global, so compare with their values before
	gets := adminRequestsTotal.WithLabelValues(http.MethodGet, "2xx")
	conflicts := adminRequestsTotal.WithLabelValues(http.MethodPatch, "4xx")
	getsBefore, conflictResponsesBefore := testutil.ToFloat64(gets), testutil.ToFloat64(conflicts)
	conflictsBefore := testutil.ToFloat64(adminConflictsTotal)
	writesBefore := testutil.ToFloat64(adminWritesTotal)

	if _, err := c.Apply(t.Context(), []RouteSpec{webSpec}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if got := testutil.ToFloat64(gets) - getsBefore; got != 2 {
		t.Errorf("GET 2xx requests = %v, want 2", got)
	}
	if got := testutil.ToFloat64(conflicts) - conflictResponsesBefore; got != 1 {
		t.Errorf("PATCH 4xx requests = %v, want 1", got)
	}
	if got := testutil.ToFloat64(adminConflictsTotal) - conflictsBefore; got != 1 {
		t.Errorf("conflicts = %v, want 1", got)
	}
	if got := testutil.ToFloat64(adminWritesTotal) - writesBefore; got != 1 {
		t.Errorf("writes = %v, want 1", got)
	}
}

func TestStatusClass(t *testing.T) {
	tests := map[int]string{0: "error", 200: "2xx", 304: "3xx", 412: "4xx", 503: "5xx"}

	for status, want := range tests {
		if got := statusClass(status); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", status, got, want)
		}
	}
}

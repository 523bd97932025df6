package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func serve(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))

	return rec.Code, rec.Body.String()
}

func TestReadyzAllPass(t *testing.T) {
	checks := []readyCheck{{name: "a", check: func(context.Context) error { return nil }}}
	h := newHealthRouter(checks, prometheus.NewRegistry())

	code, body := serve(t, h, "/readyz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz = %d %q, want 200 ok", code, body)
	}
}

func TestReadyzNamesFailingChecks(t *testing.T) {
	checks := []readyCheck{
		{name: "caches", check: func(context.Context) error { return errNotSynced }},
		{name: "webhook", check: func(context.Context) error { return nil }},
		{name: "caddy", check: func(context.Context) error { return errors.New("connection refused") }},
	}
	h := newHealthRouter(checks, prometheus.NewRegistry())

	code, body := serve(t, h, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz status = %d, want 503", code)
	}
	want := "caches: informer caches have not synced yet\ncaddy: connection refused\n"
	if body != want {
		t.Errorf("/readyz body = %q, want %q", body, want)
	}
}

func TestHealthzIgnoresChecks(t *testing.T) {
	checks := []readyCheck{{name: "caddy", check: func(context.Context) error { return errors.New("down") }}}
	h := newHealthRouter(checks, prometheus.NewRegistry())

	code, _ := serve(t, h, "/healthz")
	if code != http.StatusOK {
		t.Errorf("/healthz = %d with a failing readiness check, want 200", code)
	}
}

func TestMetricsServesRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "test"})
	reg.MustRegister(counter)
	counter.Inc()
	h := newHealthRouter(nil, reg)

	code, body := serve(t, h, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "test_total 1") {
		t.Errorf("/metrics = %d %q, want the registry's counter", code, body)
	}
}

func TestReadyzExclude(t *testing.T) {
	checks := []readyCheck{
		{name: "apiserver", check: func(context.Context) error { return errors.New("connection refused") }},
		{name: "caddy", check: func(context.Context) error { return nil }},
	}
	h := newHealthRouter(checks, prometheus.NewRegistry())

	if code, _ := serve(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", code)
	}
	if code, body := serve(t, h, "/readyz?exclude=apiserver"); code != http.StatusOK {
		t.Errorf("/readyz?exclude=apiserver = %d %q, want 200", code, body)
	}
}

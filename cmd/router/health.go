package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyCheckTimeout bounds each readiness check, so that a hung Caddy or
// API server makes /readyz fail instead of hang.
const readyCheckTimeout = 2 * time.Second

// readyCheck is one named condition of /readyz. It returns nil when ready.
type readyCheck struct {
	name  string
	check func(ctx context.Context) error
}

// newHealthRouter serves /healthz, /readyz and /metrics.
//
// /healthz returns 200 as long as the process serves HTTP; it never depends
// on Caddy or the API server, so that their outages do not restart the
// router. /readyz runs every check and returns 503 with one line per
// failing check, or 200 "ok". Each exclude query parameter skips the check
// of that name, as kube-apiserver's /readyz does, so that a probe can ignore
// a condition that should not take the Pod out of service.
func newHealthRouter(checks []readyCheck, gatherer prometheus.Gatherer) http.Handler {
	r := chi.NewRouter()

	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})

	r.Get("/readyz", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), readyCheckTimeout)
		defer cancel()

		excluded := map[string]bool{}
		for _, name := range req.URL.Query()["exclude"] {
			excluded[name] = true
		}

		var failures []string
		for _, c := range checks {
			if excluded[c.name] {
				continue
			}
			if err := c.check(ctx); err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", c.name, err))
			}
		}

		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(failures) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Join(failures, "\n") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})

	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))

	return r
}

// errNotSynced is the readiness error before the caches have synced.
var errNotSynced = errors.New("informer caches have not synced yet")

package caddyapi

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names are caddy_k8s_router_admin_<name>.
const (
	metricsNamespace = "caddy_k8s_router"
	metricsSubsystem = "admin"
)

// The collectors of this package. They are shared by all Clients of the
// process and exported only through RegisterMetrics.
var (
	adminRequestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "requests_total",
		Help:      "Caddy admin API requests by HTTP method and status class (2xx, 4xx, 5xx, or error when no response arrived).",
	}, []string{"method", "code"})

	adminRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "request_duration_seconds",
		Help:      "Duration of Caddy admin API requests in seconds, including the config reload of a write.",
		Buckets:   []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"method"})

	adminWritesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "writes_total",
		Help:      "Writes of the managed routes array that Caddy accepted; each one reloads Caddy's config.",
	})

	adminConflictsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Subsystem: metricsSubsystem,
		Name:      "conflicts_total",
		Help:      "Writes that Caddy rejected with 412 because another client changed the config after it was read.",
	})
)

// RegisterMetrics registers the admin API metrics of this package with reg:
// caddy_k8s_router_admin_requests_total, ..._request_duration_seconds,
// ..._writes_total and ..._conflicts_total. It returns the registration
// errors joined, for example when they are already registered with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	collectors := []prometheus.Collector{adminRequestsTotal, adminRequestDuration, adminWritesTotal, adminConflictsTotal}

	var errs []error
	for _, collector := range collectors {
		if err := reg.Register(collector); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	return nil
}

// observeRequest records one request. status is 0 when no response arrived.
func observeRequest(method string, status int, elapsed time.Duration) {
	adminRequestsTotal.WithLabelValues(method, statusClass(status)).Inc()
	adminRequestDuration.WithLabelValues(method).Observe(elapsed.Seconds())
}

// statusClass returns "2xx" for 200 to 299 and so on, or "error" for 0.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}

	return strconv.Itoa(status/100) + "xx"
}

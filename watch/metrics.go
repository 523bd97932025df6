package watch

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace = "caddy_k8s_router"

var (
	reconcileTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Name:      "reconcile_total",
		Help:      "Deployment syncs, by result: success, invalid (user input) or error (retried).",
	}, []string{"result"})

	reconcileDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Name:      "reconcile_duration_seconds",
		Help:      "Time to compute the desired route of one Deployment.",
		Buckets:   prometheus.ExponentialBuckets(0.00001, 4, 10),
	})

	routeWritesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace,
		Name:      "route_syncs_total",
		Help:      "Attempts to make Caddy's owned routes equal the desired set, by result: written, unchanged or error.",
	}, []string{"result"})

	routeWriteDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Name:      "route_sync_duration_seconds",
		Help:      "Time of one route sync with Caddy, including its reload when it writes.",
		Buckets:   prometheus.ExponentialBuckets(0.001, 2, 14),
	})

	managedRoutes = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace,
		Name:      "managed_routes",
		Help:      "Routes in Caddy owned by the router after the last successful sync.",
	})

	readyToRouteSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace,
		Name:      "pod_ready_to_route_written_seconds",
		Help:      "Time from the router seeing a pod become Ready to the write that added it to Caddy.",
		Buckets:   prometheus.ExponentialBuckets(0.005, 2, 14),
	})
)

// RegisterMetrics registers the reconciler's metrics with reg. Calling it
// again with the same registry is not an error.
func RegisterMetrics(reg prometheus.Registerer) error {
	collectors := []prometheus.Collector{
		reconcileTotal, reconcileDuration, routeWritesTotal, routeWriteDuration, managedRoutes, readyToRouteSeconds,
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}

	return nil
}

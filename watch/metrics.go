package watch

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
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

// RegisterMetrics registers the reconciler's and its workqueue's metrics
// with reg. Call it before New: client-go takes the workqueue metrics
// provider only once, before the first queue is created. Calling it again
// with the same registry is not an error.
func RegisterMetrics(reg prometheus.Registerer) error {
	workqueue.SetProvider(queueMetricsProvider{})

	collectors := []prometheus.Collector{
		reconcileTotal, reconcileDuration, routeWritesTotal, routeWriteDuration, managedRoutes, readyToRouteSeconds,
		queueDepth, queueAdds, queueLatency, queueWorkDuration, queueUnfinished, queueLongestRunning, queueRetries,
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

// Workqueue metrics, labelled by queue name. client-go's workqueue reports
// through the provider that is set before the first queue is created.
var (
	queueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "workqueue", Name: "depth",
		Help: "Current depth of the workqueue.",
	}, []string{"name"})
	queueAdds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "workqueue", Name: "adds_total",
		Help: "Items added to the workqueue.",
	}, []string{"name"})
	queueLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "workqueue", Name: "queue_duration_seconds",
		Help:    "Time an item waits in the workqueue before it is processed.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 4, 12),
	}, []string{"name"})
	queueWorkDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "workqueue", Name: "work_duration_seconds",
		Help:    "Time to process one item of the workqueue.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 4, 12),
	}, []string{"name"})
	queueUnfinished = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "workqueue", Name: "unfinished_work_seconds",
		Help: "Seconds of work in progress that has not been observed by work_duration_seconds.",
	}, []string{"name"})
	queueLongestRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "workqueue", Name: "longest_running_processor_seconds",
		Help: "Seconds the longest-running item of the workqueue has been processed.",
	}, []string{"name"})
	queueRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "workqueue", Name: "retries_total",
		Help: "Items added to the workqueue again after a failure.",
	}, []string{"name"})
)

// queueMetricsProvider hands client-go's workqueue the collectors above.
type queueMetricsProvider struct{}

func (queueMetricsProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return queueDepth.WithLabelValues(name)
}

func (queueMetricsProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return queueAdds.WithLabelValues(name)
}

func (queueMetricsProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return queueLatency.WithLabelValues(name)
}

func (queueMetricsProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return queueWorkDuration.WithLabelValues(name)
}

func (queueMetricsProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return queueUnfinished.WithLabelValues(name)
}

func (queueMetricsProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return queueLongestRunning.WithLabelValues(name)
}

func (queueMetricsProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return queueRetries.WithLabelValues(name)
}

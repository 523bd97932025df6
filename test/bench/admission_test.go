package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// admissionSamples is how many Deployments BenchmarkAdmission creates in
// each namespace.
const admissionSamples = 50

// BenchmarkAdmission measures Deployment creates through the API server
// with the router binary's admission webhook (create-p50-ms), and in a
// namespace the webhook does not select (create-p50-ms-nowebhook). The two
// kinds of create alternate, so that both see the same load. The webhook
// handler alone is measured by BenchmarkAdmission in package webhook, with
// its ns/op and allocs/op.
func BenchmarkAdmission(b *testing.B) {
	bd := startBed(b, bedOptions{})
	ctx := context.Background()

	// a router with its webhook registered for namespace "admission"
	s := bd.newSite(b, "admission", siteOptions{noRouter: true})
	hook := e2eutil.RegisterWebhook(b, bd.cp, s.ns)
	if err := bd.cp.CreateNamespace(ctx, "admission-plain", nil); err != nil {
		b.Fatal(err)
	}
	s.startRouter(siteOptions{webhookArgs: hook.Flags})
	if err := waitWebhook(ctx, bd, s.ns); err != nil {
		b.Fatal(err)
	}

	callsBefore, err := webhookCalls(ctx, bd)
	if err != nil {
		b.Fatal(err)
	}

	var with, without []time.Duration
	b.ResetTimer()
	for i := range b.N * admissionSamples {
		for _, ns := range []string{s.ns, "admission-plain"} {
			d := workspaceDeployment(fmt.Sprintf("create-%d", i))
			delete(d.Annotations, routing.AnnotationRouteURL)

			start := time.Now()
			created, err := bd.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
			elapsed := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}

			_, annotated := created.Annotations[routing.AnnotationRouteURL]
			if annotated != (ns == s.ns) {
				b.Fatalf("create in %s: route annotation present = %v", ns, annotated)
			}
			if ns == s.ns {
				with = append(with, elapsed)
			} else {
				without = append(without, elapsed)
			}
		}
	}
	b.StopTimer()

	callsAfter, err := webhookCalls(ctx, bd)
	if err != nil {
		b.Fatal(err)
	}
	calls := callsAfter.minus(callsBefore)
	b.Logf("the API server's webhook calls: %v, mean %.2f ms", calls.count, 1000*calls.sum/calls.count)
	b.Logf("webhook: p50 %.2f ms, p99 %.2f ms; no webhook: p50 %.2f ms, p99 %.2f ms (%d creates each)",
		ms(percentile(with, 50)), ms(percentile(with, 99)), ms(percentile(without, 50)), ms(percentile(without, 99)), len(with))
	b.ReportMetric(ms(percentile(with, 50)), "create-p50-ms")
	b.ReportMetric(ms(percentile(without, 50)), "create-p50-ms-nowebhook")
}

// histogram is the sum and count of a Prometheus histogram.
type histogram struct {
	sum, count float64
}

func (h histogram) minus(other histogram) histogram {
	return histogram{sum: h.sum - other.sum, count: h.count - other.count}
}

// webhookCalls returns the API server's histogram of the time it spent in
// mutating webhook calls, from its /metrics.
func webhookCalls(ctx context.Context, bd *bed) (histogram, error) {
	data, err := bd.client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return histogram{}, fmt.Errorf("reading the API server's metrics: %w", err)
	}

	const name = "apiserver_admission_webhook_admission_duration_seconds"
	var h histogram
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.Contains(line, `type="admit"`) {
			continue
		}
		value, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, name+"_sum{"):
			h.sum += value
		case strings.HasPrefix(line, name+"_count{"):
			h.count += value
		}
	}

	return h, nil
}

// waitWebhook polls with dry-run creates in ns until the API server, which
// loads webhook configurations in the background, calls the webhook.
func waitWebhook(ctx context.Context, bd *bed, ns string) error {
	probe := workspaceDeployment("webhook-probe")
	delete(probe.Annotations, routing.AnnotationRouteURL)

	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		created, err := bd.client.AppsV1().Deployments(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err
		}
		return created.Annotations[routing.AnnotationRouteURL] != "", nil
	})
}

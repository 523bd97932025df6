package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

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

	b.ResetTimer()
	with, without := timeCreates(b, bd, s.ns, "admission-plain")
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
// loads webhook configurations and admission policies in the background,
// sets the route URL annotation.
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

// BenchmarkAdmissionPolicy measures the alternative to the webhook: a
// MutatingAdmissionPolicy (admissionregistration.k8s.io/v1) whose CEL
// expression sets the same route URL annotation inside the API server, so
// that no HTTPS call leaves it. It creates Deployments as
// BenchmarkAdmission does, in a namespace the policy selects and in one it
// does not.
//
// Metrics: create-p50-ms-policy and create-p50-ms-nowebhook.
func BenchmarkAdmissionPolicy(b *testing.B) {
	bd := startBed(b, bedOptions{})
	ctx := context.Background()

	const label = "bench.caddy-k8s-router.test/policy"
	for _, ns := range []string{"policy", "policy-plain"} {
		labels := map[string]string{}
		if ns == "policy" {
			labels[label] = "true"
		}
		if err := bd.cp.CreateNamespace(ctx, ns, labels); err != nil {
			b.Fatal(err)
		}
	}
	if err := createRouteURLPolicy(ctx, bd, label); err != nil {
		b.Fatal(err)
	}
	if err := waitWebhook(ctx, bd, "policy"); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	with, without := timeCreates(b, bd, "policy", "policy-plain")
	b.StopTimer()

	b.Logf("policy: p50 %.2f ms, p99 %.2f ms; neither: p50 %.2f ms, p99 %.2f ms (%d creates each)",
		ms(percentile(with, 50)), ms(percentile(with, 99)), ms(percentile(without, 50)), ms(percentile(without, 99)), len(with))
	b.ReportMetric(ms(percentile(with, 50)), "create-p50-ms-policy")
	b.ReportMetric(ms(percentile(without, 50)), "create-p50-ms-nowebhook")
}

// timeCreates creates b.N*admissionSamples Deployments in each of the
// namespaces mutated and plain, alternating, and returns the duration of
// each create. It fails b unless every Deployment in mutated, and none in
// plain, comes back with the route URL annotation set to its host.
func timeCreates(b *testing.B, bd *bed, mutated, plain string) (inMutated, inPlain []time.Duration) {
	b.Helper()
	ctx := context.Background()

	for i := range b.N * admissionSamples {
		for _, ns := range []string{mutated, plain} {
			d := workspaceDeployment(fmt.Sprintf("create-%d", i))
			delete(d.Annotations, routing.AnnotationRouteURL)

			start := time.Now()
			created, err := bd.client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
			elapsed := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}

			got, annotated := created.Annotations[routing.AnnotationRouteURL]
			if ns == mutated && got != host(d.Name) || ns == plain && annotated {
				b.Fatalf("create in %s: route annotation %q, annotated %v", ns, got, annotated)
			}
			if ns == mutated {
				inMutated = append(inMutated, elapsed)
			} else {
				inPlain = append(inPlain, elapsed)
			}
		}
	}

	return inMutated, inPlain
}

// createRouteURLPolicy creates a MutatingAdmissionPolicy and its binding
// that set the route URL annotation of every Deployment created or updated
// in the namespaces labelled label=true to <name>.<baseDomain>, as the
// webhook does with the default host template.
func createRouteURLPolicy(ctx context.Context, bd *bed, label string) error {
	const name = "route-url"
	expression := fmt.Sprintf(`Object{metadata: Object.metadata{annotations: {%q: object.metadata.name + ".%s"}}}`,
		routing.AnnotationRouteURL, baseDomain)

	policy := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{
							APIGroups:   []string{"apps"},
							APIVersions: []string{"v1"},
							Resources:   []string{"deployments"},
						},
					},
				}},
			},
			Mutations: []admissionregistrationv1.Mutation{{
				PatchType:          admissionregistrationv1.PatchTypeApplyConfiguration,
				ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: expression},
			}},
			FailurePolicy:      ptr.To(admissionregistrationv1.Ignore),
			ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
		},
	}
	policies := bd.client.AdmissionregistrationV1().MutatingAdmissionPolicies()
	if _, err := policies.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating MutatingAdmissionPolicy %s: %w", name, err)
	}

	binding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{
			PolicyName: name,
			MatchResources: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}},
			},
		},
	}
	bindings := bd.client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings()
	if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating MutatingAdmissionPolicyBinding %s: %w", name, err)
	}

	return nil
}

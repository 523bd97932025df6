package webhook

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

const (
	// watchedNamespace is the only namespace the webhook configuration
	// selects.
	watchedNamespace = "gitspaces"
	// outsideNamespace is not selected, so the API server never sends its
	// Deployments to the webhook.
	outsideNamespace = "elsewhere"
	// webhookName is the name of the webhook in the configuration.
	webhookName = "route-url.caddy-k8s-router.github.io"
)

// apiserverEnv is a control plane with the webhook server registered.
type apiserverEnv struct {
	clientset kubernetes.Interface
	warnings  *warningRecorder
}

// startAPIServerEnv starts the test bed's API server, the webhook server and
// a MutatingWebhookConfiguration pointing at it, and waits until the API
// server calls the webhook. Cleanup stops the webhook server before the
// control plane. Without test-bed binaries it skips the test, unless CI is
// set, in which case it fails.
func startAPIServerEnv(tb testing.TB) *apiserverEnv {
	tb.Helper()
	ctx := context.Background()

	// the control plane, stopped last
	cp, err := testbed.StartControlPlane(ctx, testbed.ControlPlaneOptions{})
	if testbed.SkipIfMissing(err) {
		tb.Skipf("skipping API server test: %v", err)
	}
	if err != nil {
		tb.Fatalf("starting the control plane: %v", err)
	}
	tb.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			tb.Errorf("stopping the control plane: %v", err)
		}
	})

	for _, namespace := range []string{watchedNamespace, outsideNamespace} {
		if err := cp.CreateNamespace(ctx, namespace, nil); err != nil {
			tb.Fatal(err)
		}
	}

	// the webhook server, stopped by its own cleanup before the control plane
	namer, err := routing.NewNamer(testBaseDomain, routing.DefaultHostTemplate)
	if err != nil {
		tb.Fatal(err)
	}
	running := startTestServer(tb, NewHandler(namer, nil))

	// a client that records the warnings of every response
	warnings := &warningRecorder{}
	config := rest.CopyConfig(cp.Config)
	config.WarningHandler = warnings
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		tb.Fatal(err)
	}

	configuration := webhookConfiguration("https://"+running.addr+Path, running.ca.certPEM)
	_, err = clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, configuration, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("creating the MutatingWebhookConfiguration: %v", err)
	}

	env := &apiserverEnv{clientset: clientset, warnings: warnings}
	env.waitForWebhook(tb)

	return env
}

// webhookConfiguration returns the configuration the router's manifests
// install, with the webhook reached at url and trusted through caBundle.
func webhookConfiguration(url string, caBundle []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "caddy-router"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    webhookName,
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](5),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{"apps"},
					APIVersions: []string{"v1"},
					Resources:   []string{"deployments"},
					Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key:      corev1.LabelMetadataName,
				Operator: metav1.LabelSelectorOpIn,
				Values:   []string{watchedNamespace},
			}}},
		}},
	}
}

// waitForWebhook polls with dry-run creates until the API server, which
// loads webhook configurations asynchronously, calls the webhook.
func (e *apiserverEnv) waitForWebhook(tb testing.TB) {
	tb.Helper()

	probe := newDeployment("probe")
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		created, err := e.clientset.AppsV1().Deployments(watchedNamespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err
		}
		return created.Annotations[routing.AnnotationRouteURL] != "", nil
	})
	if err != nil {
		tb.Fatalf("waiting for the API server to call the webhook: %v", err)
	}
}

// newDeployment returns a minimal valid Deployment called name.
func newDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": "ws"}

	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "ide",
					Image: "ide:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: routing.DefaultPort}},
				}}},
			},
		},
	}
}

// warningRecorder collects the text of every warning header a client
// receives.
type warningRecorder struct {
	mu    sync.Mutex
	texts []string
}

// HandleWarningHeader records text.
func (r *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()

	r.texts = append(r.texts, text)
}

// take returns the recorded warnings and clears the record.
func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()

	texts := r.texts
	r.texts = nil
	return texts
}

func TestAPIServer(t *testing.T) {
	env := startAPIServerEnv(t)
	deployments := env.clientset.AppsV1().Deployments(watchedNamespace)
	ctx := context.Background()

	t.Run("create", func(t *testing.T) {
		env.warnings.take()

		created, err := deployments.Create(ctx, newDeployment("ws1"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		if got := created.Annotations[routing.AnnotationRouteURL]; got != hostWS1 {
			t.Errorf("annotation in create response = %q, want %q", got, hostWS1)
		}
		if warnings := env.warnings.take(); len(warnings) > 0 {
			t.Errorf("warnings = %q, want none", warnings)
		}
	})

	t.Run("dry-run create", func(t *testing.T) {
		created, err := deployments.Create(ctx, newDeployment("ws-dry"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}

		if got := created.Annotations[routing.AnnotationRouteURL]; got != "ws-dry."+testBaseDomain {
			t.Errorf("annotation in dry-run response = %q, want %q", got, "ws-dry."+testBaseDomain)
		}
		if _, err := deployments.Get(ctx, "ws-dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get after dry run: error = %v, want NotFound", err)
		}
	})

	t.Run("client value replaced", func(t *testing.T) {
		env.warnings.take()
		deployment := newDeployment("ws2")
		deployment.Annotations = map[string]string{routing.AnnotationRouteURL: hostWS1, "example.test/owner": "alice"}

		created, err := deployments.Create(ctx, deployment, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		if got := created.Annotations[routing.AnnotationRouteURL]; got != "ws2."+testBaseDomain {
			t.Errorf("annotation = %q, want %q", got, "ws2."+testBaseDomain)
		}
		if got := created.Annotations["example.test/owner"]; got != "alice" {
			t.Errorf("other annotation = %q, want %q", got, "alice")
		}
		if warnings := env.warnings.take(); !containsText(warnings, "replaced with") {
			t.Errorf("warnings = %q, want one about the replaced value", warnings)
		}
	})

	t.Run("update removing annotation", func(t *testing.T) {
		current, err := deployments.Get(ctx, "ws1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		delete(current.Annotations, routing.AnnotationRouteURL)

		updated, err := deployments.Update(ctx, current, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		if got := updated.Annotations[routing.AnnotationRouteURL]; got != hostWS1 {
			t.Errorf("annotation after update = %q, want %q", got, hostWS1)
		}
	})

	t.Run("invalid name", func(t *testing.T) {
		env.warnings.take()

		created, err := deployments.Create(ctx, newDeployment("a.b"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		if got, found := created.Annotations[routing.AnnotationRouteURL]; found {
			t.Errorf("annotation = %q, want none", got)
		}
		want := `deployment name "a.b" cannot form a host: must be a DNS-1123 label (lower case letters, digits and '-', at most 63 characters, no dots); no route will be created`
		if warnings := env.warnings.take(); !slices.Contains(warnings, want) {
			t.Errorf("warnings = %q, want %q", warnings, want)
		}
	})

	t.Run("generateName", func(t *testing.T) {
		deployment := newDeployment("")
		deployment.GenerateName = "ws-"

		created, err := deployments.Create(ctx, deployment, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		if !strings.HasPrefix(created.Name, "ws-") {
			t.Errorf("name = %q, want a generated name with prefix ws-", created.Name)
		}
		if got, found := created.Annotations[routing.AnnotationRouteURL]; found {
			t.Errorf("annotation = %q, want none until the reconciler sets it", got)
		}
	})

	t.Run("namespace outside selector", func(t *testing.T) {
		created, err := env.clientset.AppsV1().Deployments(outsideNamespace).Create(ctx, newDeployment("ws1"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		if got, found := created.Annotations[routing.AnnotationRouteURL]; found {
			t.Errorf("annotation = %q, want none outside the selected namespace", got)
		}
	})
}

// containsText reports whether any of texts contains substring.
func containsText(texts []string, substring string) bool {
	return slices.ContainsFunc(texts, func(text string) bool { return strings.Contains(text, substring) })
}

// BenchmarkCreate measures Deployment creates through the API server, in
// the namespace the webhook selects and in one it does not. It reports the
// median create latency as create-p50-ms and create-p50-ms-nowebhook.
func BenchmarkCreate(b *testing.B) {
	env := startAPIServerEnv(b)

	cases := []struct {
		name      string
		namespace string
		metric    string
	}{
		{name: "webhook", namespace: watchedNamespace, metric: "create-p50-ms"},
		{name: "nowebhook", namespace: outsideNamespace, metric: "create-p50-ms-nowebhook"},
	}

	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			deployments := env.clientset.AppsV1().Deployments(bc.namespace)
			var durations []time.Duration
			run := 0

			for b.Loop() {
				run++
				name := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), run)

				start := time.Now()
				created, err := deployments.Create(context.Background(), newDeployment(name), metav1.CreateOptions{})
				durations = append(durations, time.Since(start))

				if err != nil {
					b.Fatal(err)
				}
				_, annotated := created.Annotations[routing.AnnotationRouteURL]
				if annotated != (bc.namespace == watchedNamespace) {
					b.Fatalf("create in %s: annotated = %v", bc.namespace, annotated)
				}
			}

			b.ReportMetric(float64(median(durations).Microseconds())/1000, bc.metric)
		})
	}
}

// median returns the middle value of durations, or zero for none.
func median(durations []time.Duration) time.Duration {
	if len(durations) == 0 {
		return 0
	}

	sorted := slices.Clone(durations)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return sorted[len(sorted)/2]
}

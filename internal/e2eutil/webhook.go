package e2eutil

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/webhook"
)

// webhookSeq numbers the webhook configurations of one test binary.
var webhookSeq atomic.Int64

// Webhook is an admission webhook registered for a router under test.
type Webhook struct {
	// Flags are the router flags that serve the webhook: its host, port
	// and certificate folder.
	Flags []string
	// URL is the HTTPS endpoint that the API server sends admission
	// requests to.
	URL string
	// CAPEM is the CA certificate of the webhook's serving certificate.
	CAPEM []byte
}

// RegisterWebhook writes serving certificates into a temporary folder of t
// and registers a MutatingWebhookConfiguration on c that sends the
// Deployments of the given namespaces to a free loopback port. It labels
// those namespaces with a label of their own, so that the webhooks of other
// tests leave them alone. It fails t on any error and deletes the
// configuration when t ends.
func RegisterWebhook(t testing.TB, c *testbed.ControlPlane, namespaces ...string) Webhook {
	t.Helper()
	ctx := context.Background()

	certDir := t.TempDir()
	caPEM, err := testbed.WriteServingCert(certDir)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := testbed.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")

	// label the namespaces for this webhook only
	name := fmt.Sprintf("e2e-webhook-%d", webhookSeq.Add(1))
	label := "caddy-k8s-router.test/" + name
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"true"}}}`, label)
	for _, ns := range namespaces {
		if _, err := c.Clientset.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("labelling namespace %s for webhook %s: %v", ns, name, err)
		}
	}

	// register the webhook
	url := "https://" + addr + webhook.Path
	if err := testbed.RegisterWebhook(ctx, c.Clientset, name, url, caPEM, label); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
	})

	return Webhook{
		Flags: []string{"--webhook-host=127.0.0.1", "--webhook-port=" + port, "--webhook-cert-dir=" + certDir},
		URL:   url,
		CAPEM: caPEM,
	}
}

// WarningRecorder collects the text of every warning header that a client
// receives. Set it as rest.Config.WarningHandler. It is safe for concurrent
// use.
type WarningRecorder struct {
	mu    sync.Mutex
	texts []string
}

// HandleWarningHeader records text.
func (r *WarningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()

	r.texts = append(r.texts, text)
}

// Take returns the warnings recorded since the last call and clears them.
func (r *WarningRecorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()

	texts := r.texts
	r.texts = nil

	return texts
}

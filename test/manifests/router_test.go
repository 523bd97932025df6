package manifests_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/util/retry"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
	"github.com/caddy-k8s-router/caddy-k8s-router/watch"
)

// baseDomain is K8S_BASE_DOMAIN in the base's settings.
const baseDomain = "workspaces.example.test"

// startRouter starts a Caddy with its admin API on a unix socket, as in the
// Pod, and the router with the base's settings, extraArgs and a kubeconfig
// that impersonates the router's ServiceAccount. It waits until the router
// is ready and stops both when the test ends.
func startRouter(t *testing.T, b *testBed, extraArgs ...string) *testbed.Caddy {
	t.Helper()
	ctx := t.Context()

	caddy, err := testbed.StartCaddy(ctx, testbed.CaddyOptions{AdminSocket: filepath.Join(t.TempDir(), "admin.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	healthAddr := freeAddr(t)
	args := append([]string{
		"--kubeconfig=" + b.serviceAccountKubeconfig(t),
		"--health-addr=" + healthAddr,
		"--log-format=text",
		"--drift-interval=1s",
	}, extraArgs...)
	env := settingsEnv(t, baseObjects(t), caddy.AdminURL)

	router, err := testbed.StartProcess(routerBinary(t), args, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := router.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("router log:\n%s", router.Log())
		}
	})

	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	waitFor(t, "router /readyz", func() bool {
		select {
		case <-router.Exited():
			t.Fatalf("router exited with code %d:\n%s", router.ExitCode(), router.Log())
		default:
		}
		resp, err := client.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	t.Cleanup(func() {
		if log := router.Log(); containsFold(log, "forbidden") {
			t.Errorf("router log mentions a forbidden request:\n%s", log)
		}
	})
	return caddy
}

// TestRouterAsServiceAccount runs the router with only the RBAC of the
// manifests and checks that everything it does works: it routes a Ready
// Deployment through Caddy, patches the route annotation onto it and
// records an Event.
func TestRouterAsServiceAccount(t *testing.T) {
	b := controlPlane(t)
	b.applyRBAC(t)
	ctx := t.Context()
	caddy := startRouter(t, b, "--webhook-port=0")

	// a Deployment created without the webhook, so the router backfills the
	// annotation
	const name = "rbac-routed"
	host := name + "." + baseDomain
	deployments := b.cp.Clientset.AppsV1().Deployments(watchedNamespace)
	if _, err := deployments.Create(ctx, testDeployment(name, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deployments.Delete(context.Background(), name, metav1.DeleteOptions{}) })

	// list and watch of Deployments and Pods: the route reaches the pod
	waitFor(t, "Caddy to route "+host, func() bool {
		status, body, err := caddy.Get(ctx, host, "/")
		return err == nil && status == http.StatusOK && strings.HasPrefix(body, name+"-")
	})

	// patch of Deployments: the annotation is backfilled
	waitFor(t, "the route annotation", func() bool {
		d, err := deployments.Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Annotations[routing.AnnotationRouteURL] == host
	})

	// create of Events: the router records the new route
	waitFor(t, "a RouteCreated event", func() bool {
		selector := fields.Set{"involvedObject.name": name, "reason": watch.ReasonRouteCreated}.String()
		events, err := b.cp.Clientset.CoreV1().Events(watchedNamespace).List(ctx, metav1.ListOptions{FieldSelector: selector})
		return err == nil && len(events.Items) > 0
	})
}

// TestWebhookFromManifests registers the MutatingWebhookConfiguration of
// the certs/ overlay, with the caBundle from certgen and its service
// reference replaced by the URL of a router on loopback, and checks that the
// webhook stamps the annotation in the watched namespace only.
func TestWebhookFromManifests(t *testing.T) {
	b := controlPlane(t)
	b.applyRBAC(t)
	ctx := t.Context()

	// certgen adds 127.0.0.1 to the Service's names, because the API server
	// calls the router by that address here.
	dir := checkout(t)
	certgen(t, filepath.Join(dir, "certs"), "-ip", "127.0.0.1")
	objs := render(t, filepath.Join(dir, "certs"))

	// the router serves the key pair from the overlay's Secret
	secret := convert[corev1.Secret](t, objs.find(t, "Secret", webhookSecret))
	certDir := t.TempDir()
	for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if err := os.WriteFile(filepath.Join(certDir, key), secret.Data[key], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	webhookAddr := freeAddr(t)
	startRouter(t, b, "--webhook-host=127.0.0.1", "--webhook-port="+port(t, webhookAddr), "--webhook-cert-dir="+certDir)

	// the configuration from the manifests, pointed at the router
	config := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, objs.find(t, "MutatingWebhookConfiguration", appName))
	hook := &config.Webhooks[0]
	url := "https://" + webhookAddr + *hook.ClientConfig.Service.Path
	hook.ClientConfig.URL = &url
	hook.ClientConfig.Service = nil
	configs := b.cp.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := configs.Create(ctx, config, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = configs.Delete(context.Background(), config.Name, metav1.DeleteOptions{}) })

	// failurePolicy Ignore would hide a webhook that is not serving yet, so
	// wait until it accepts TLS with the caBundle as its only root
	waitForTLS(t, webhookAddr, hook.ClientConfig.CABundle)

	// CREATE: the create response carries the annotation, so it came from
	// the webhook and not from the router's backfill
	want := "stamped." + baseDomain
	created := createDeployment(t, b, watchedNamespace, "stamped")
	if got := created.Annotations[routing.AnnotationRouteURL]; got != want {
		t.Errorf("create response annotation = %q, expected %q", got, want)
	}

	// UPDATE: an update that drops the annotation gets it back
	// (the controller manager writes the status meanwhile, so retry on
	// conflicts)
	deployments := b.cp.Clientset.AppsV1().Deployments(watchedNamespace)
	var updated *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := deployments.Get(ctx, "stamped", metav1.GetOptions{})
		if err != nil {
			return err
		}
		delete(current.Annotations, routing.AnnotationRouteURL)
		updated, err = deployments.Update(ctx, current, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := updated.Annotations[routing.AnnotationRouteURL]; got != want {
		t.Errorf("update response annotation = %q, expected %q", got, want)
	}

	// namespaces outside the selector are never sent to the webhook
	for _, namespace := range []string{routerNamespace, "kube-system", "default"} {
		t.Run("skips "+namespace, func(t *testing.T) {
			created := createDeployment(t, b, namespace, "not-stamped")
			if got, ok := created.Annotations[routing.AnnotationRouteURL]; ok {
				t.Errorf("annotation = %q, expected none outside the watched namespace", got)
			}
		})
	}
}

// createDeployment creates a Deployment without replicas as the admin and
// deletes it when the test ends.
func createDeployment(t *testing.T, b *testBed, namespace, name string) *appsv1.Deployment {
	t.Helper()

	d := testDeployment(name, 0)
	d.Namespace = namespace
	deployments := b.cp.Clientset.AppsV1().Deployments(namespace)
	created, err := deployments.Create(t.Context(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deployments.Delete(context.Background(), name, metav1.DeleteOptions{}) })

	return created
}

// waitForTLS waits until addr completes a TLS handshake for 127.0.0.1 with
// caPEM as the only trusted root, as the API server will.
func waitForTLS(t *testing.T, addr string, caPEM []byte) {
	t.Helper()

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle holds no PEM certificate")
	}
	config := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	waitFor(t, "the webhook's TLS listener", func() bool {
		conn, err := tls.Dial("tcp", addr, config)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

// Command demo runs the router locally against the test bed: a real
// kube-apiserver, etcd and kube-controller-manager, the kubelet stand-in, a
// real Caddy and the router binary, all on loopback. It creates three sample
// workspace Deployments, prints a curl line for each, and runs until
// interrupted, then stops everything. `make demo` builds and runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// namespaceLabel selects the namespaces the demo's webhook intercepts.
const namespaceLabel = "caddy-k8s-router.demo/webhook"

// workspace is one sample Deployment.
type workspace struct {
	name string
	// port is the container port the workspace serves on.
	port int32
	// annotation is the port annotation, or "" to use the router's default.
	annotation string
}

// workspaces shows each way to pick the port: a number, a container port
// name, and the default (8089).
var workspaces = []workspace{
	{name: "vscode", port: 8080, annotation: "8080"},
	{name: "jupyter", port: 8888, annotation: "http"},
	{name: "theia", port: 8089},
}

func main() {
	router := flag.String("router", "bin/router", "router binary to run")
	namespace := flag.String("namespace", "gitspaces", "namespace of the sample workspaces")
	baseDomain := flag.String("base-domain", "gitspaces.localhost", "base domain of the workspace hosts")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, *router, *namespace, *baseDomain); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run starts everything, prints the curl lines, and waits for ctx. Every
// started part is stopped before it returns.
func run(ctx context.Context, routerPath, namespace, baseDomain string) (err error) {
	routerPath, err = filepath.Abs(routerPath)
	if err != nil {
		return err
	}
	if _, err := os.Stat(routerPath); err != nil {
		return fmt.Errorf("router binary %s not found; run `make build` first: %w", routerPath, err)
	}

	// the control plane and the kubelet stand-in
	step("starting etcd, kube-apiserver and kube-controller-manager")
	cp, err := testbed.StartControlPlane(ctx, testbed.ControlPlaneOptions{ControllerManager: true})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cp.Stop()) }()

	kubelet, err := testbed.StartKubelet(ctx, cp.Clientset, testbed.KubeletOptions{Namespace: namespace})
	if err != nil {
		return err
	}
	defer kubelet.Stop()

	if err := cp.CreateNamespace(ctx, namespace, map[string]string{namespaceLabel: "true"}); err != nil {
		return err
	}

	// Caddy
	step("starting Caddy")
	caddy, err := testbed.StartCaddy(ctx, testbed.CaddyOptions{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, caddy.Stop()) }()

	// the router and its webhook
	step("starting the router")
	certDir, err := os.MkdirTemp("", "demo-certs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(certDir)
	router, healthURL, err := startRouter(ctx, cp, caddy, routerPath, certDir, namespace, baseDomain)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, router.Stop(10*time.Second)) }()
	if err := waitReady(ctx, healthURL, router); err != nil {
		return err
	}

	// the sample workspaces
	step("creating the sample workspaces")
	hosts := make([]string, 0, len(workspaces))
	for _, w := range workspaces {
		d := testbed.Deployment(w.name, 1, w.port)
		if w.annotation != "" {
			d.Annotations = map[string]string{"gitspace.caddy.default.port": w.annotation}
		}
		created, err := cp.Clientset.AppsV1().Deployments(namespace).Create(ctx, d, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating deployment %s: %w", w.name, err)
		}
		host := routeURL(created)
		if host == "" {
			// The webhook did not respond in time; the router backfills it.
			host = w.name + "." + baseDomain
		}
		hosts = append(hosts, host)
	}
	for _, host := range hosts {
		if err := waitRoutable(ctx, caddy, host); err != nil {
			return fmt.Errorf("%w; router log: %s", err, router.LogPath)
		}
	}

	// tell the user how to reach them
	caddyURL := "http://" + caddy.HTTPAddr
	step("ready at " + time.Now().Format(time.TimeOnly))
	fmt.Printf("demo ready: caddy=%s\n", caddyURL)
	for _, host := range hosts {
		fmt.Printf("curl -H 'Host: %s' %s/\n", host, caddyURL)
	}
	fmt.Printf("\nkubectl: %s --kubeconfig %s -n %s get deployments\n", cp.KubectlPath, cp.KubeconfigPath, namespace)
	fmt.Printf("router log: %s\nhealth: %s/readyz  metrics: %s/metrics\n", router.LogPath, healthURL, healthURL)
	fmt.Println("Press Ctrl-C to stop.")

	select {
	case <-ctx.Done():
	case <-router.Exited():
		return fmt.Errorf("the router exited with code %d; log: %s", router.ExitCode(), router.LogPath)
	}
	step("stopping")

	return nil
}

// startRouter writes the webhook's certificates into certDir, registers the
// webhook and runs the router binary.
func startRouter(ctx context.Context, cp *testbed.ControlPlane, caddy *testbed.Caddy, path, certDir, namespace, baseDomain string) (*testbed.Process, string, error) {
	caPEM, err := testbed.WriteServingCert(certDir)
	if err != nil {
		return nil, "", err
	}
	webhookAddr, err := testbed.FreeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	healthAddr, err := testbed.FreeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	_, webhookPort, _ := strings.Cut(webhookAddr, ":")

	url := "https://" + webhookAddr + "/mutate-apps-v1-deployment"
	if err := testbed.RegisterWebhook(ctx, cp.Clientset, "caddy-k8s-router-demo", url, caPEM, namespaceLabel); err != nil {
		return nil, "", err
	}

	router, err := testbed.StartProcess(path, []string{
		"--namespace=" + namespace,
		"--base-domain=" + baseDomain,
		"--kubeconfig=" + cp.KubeconfigPath,
		"--caddy-admin=" + caddy.AdminURL,
		"--health-addr=" + healthAddr,
		"--webhook-host=127.0.0.1",
		"--webhook-port=" + webhookPort,
		"--webhook-cert-dir=" + certDir,
		"--log-format=text",
	}, nil)
	if err != nil {
		return nil, "", err
	}

	return router, "http://" + healthAddr, nil
}

// waitReady waits for the router's /readyz.
func waitReady(ctx context.Context, healthURL string, router *testbed.Process) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		if router.ExitCode() != -1 {
			return false, fmt.Errorf("the router exited with code %d; log: %s", router.ExitCode(), router.LogPath)
		}
		resp, err := http.Get(healthURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the router to be ready: %w; log: %s", err, router.LogPath)
	}

	return nil
}

// waitRoutable waits until Caddy responds with 200 for host.
func waitRoutable(ctx context.Context, caddy *testbed.Caddy, host string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		status, _, err := caddy.Get(ctx, host, "/")
		return err == nil && status == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to respond through Caddy: %w", host, err)
	}

	return nil
}

// routeURL returns the host the webhook stamped on d.
func routeURL(d *appsv1.Deployment) string {
	return d.Annotations["gitspace.caddy.route.url"]
}

func step(message string) {
	fmt.Fprintf(os.Stderr, "demo: %s\n", message)
}

// Command router is the caddy-k8s-router sidecar. It watches Deployments and
// their pods, routes every Ready Deployment through Caddy's admin API at
// <name>.<base domain>, and serves the admission webhook that stamps that
// host on each Deployment. Run it with -h for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/caddy-k8s-router/caddy-k8s-router/caddyapi"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
	"github.com/caddy-k8s-router/caddy-k8s-router/watch"
	"github.com/caddy-k8s-router/caddy-k8s-router/webhook"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2
)

// shutdownTimeout bounds how long the health server waits for open requests
// on shutdown.
const shutdownTimeout = 5 * time.Second

// webhookRetryDelay is the wait before the webhook server is started again
// after it failed, for example because its certificate is not mounted yet.
const webhookRetryDelay = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// run is the whole router: it returns the process exit code once ctx is
// done or start-up fails.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	// read the configuration
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if errors.Is(err, errPrinted) {
		return exitConfig
	}
	if err != nil {
		fmt.Fprintf(stderr, "router: %v\n", err)
		return exitConfig
	}
	log := newLogger(stderr, cfg.logLevel, cfg.logFormat)

	// build the parts
	namer, err := routing.NewNamer(cfg.baseDomain, cfg.hostTemplate)
	if err != nil {
		fmt.Fprintf(stderr, "router: %v\n", err)
		return exitConfig
	}
	caddy, err := caddyapi.New(caddyapi.Config{
		AdminURL:   cfg.caddyAdmin,
		Server:     cfg.caddyServer,
		SubrouteID: cfg.caddySubrouteID,
		IDPrefix:   cfg.routeIDPrefix,
		Proxy:      cfg.proxy,
		Logger:     log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "router: invalid Caddy settings: %v\n", err)
		return exitConfig
	}
	restConfig, err := loadRESTConfig(cfg.kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "router: %v\n", err)
		return exitConfig
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintf(stderr, "router: creating the Kubernetes client: %v\n", err)
		return exitConfig
	}
	// register the metrics before the controller creates its workqueue;
	// controller-runtime's registry already holds the client-go and webhook
	// collectors
	registry := ctrlmetrics.Registry
	for _, register := range []func(prometheus.Registerer) error{watch.RegisterMetrics, caddyapi.RegisterMetrics, registerRuntimeMetrics} {
		if err := register(registry); err != nil {
			log.Error("registering metrics failed", "err", err)
			return exitFailure
		}
	}
	controller, err := watch.New(client, caddyWriter{client: caddy}, watch.Options{
		Namespaces:     cfg.namespaces,
		Namer:          namer,
		RouteIDPrefix:  cfg.routeIDPrefix,
		DefaultPort:    cfg.defaultPort,
		IPFamily:       cfg.ipFamily,
		Workers:        cfg.workers,
		ResyncPeriod:   cfg.resyncPeriod,
		DriftInterval:  cfg.driftInterval,
		ProbeInterval:  probeInterval(cfg.probeInterval),
		WritePerChange: cfg.writePerChange,
		Logger:         log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "router: %v\n", err)
		return exitConfig
	}

	// readiness checks
	checks := []readyCheck{
		{name: "caches", check: func(context.Context) error {
			if !controller.HasSynced() {
				return errNotSynced
			}
			return nil
		}},
		{name: "apiserver", check: func(context.Context) error { return controller.APIServerError() }},
		{name: "caddy", check: caddy.Check},
		{name: "route-sync", check: func(context.Context) error { return controller.LastSyncError() }},
	}

	var wg sync.WaitGroup
	failed := make(chan error, 3)

	// the webhook
	if cfg.webhookPort != 0 {
		server := webhook.NewServer(webhook.Options{Host: cfg.webhookHost, Port: cfg.webhookPort, CertDir: cfg.webhookCertDir},
			webhook.NewHandler(namer, log))
		started := server.StartedChecker()
		checks = append(checks, readyCheck{name: "webhook", check: func(context.Context) error { return started(nil) }})
		wg.Go(func() { runWebhook(ctx, server.Start, cfg, log) })
	}

	// the health server
	health := &http.Server{
		Addr:              cfg.healthAddr,
		Handler:           newHealthRouter(checks, registry),
		ReadHeaderTimeout: 10 * time.Second,
	}
	listener, err := net.Listen("tcp", cfg.healthAddr)
	if err != nil {
		log.Error("listening for health checks failed", "addr", cfg.healthAddr, "err", err)
		return exitFailure
	}
	log.Info("serving health checks and metrics", "addr", listener.Addr().String())
	wg.Go(func() {
		if err := health.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("health server: %w", err)
		}
	})

	// the controller
	log.Info("starting router", "namespaces", cfg.namespaces, "base_domain", cfg.baseDomain,
		"caddy_admin", cfg.caddyAdmin, "caddy_server", cfg.caddyServer, "caddy_subroute_id", cfg.caddySubrouteID)
	wg.Go(func() {
		if err := controller.Run(ctx); err != nil {
			failed <- fmt.Errorf("controller: %w", err)
		}
	})

	// wait for a signal or a failure, then stop everything; routes stay in
	// Caddy, which keeps serving them
	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down; routes stay in Caddy")
	case err := <-failed:
		log.Error("router failed", "err", err)
		code = exitFailure
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := health.Shutdown(stopCtx); err != nil {
		log.Warn("health server did not stop cleanly", "err", err)
	}
	if code == exitFailure {
		return code
	}
	wg.Wait()
	log.Info("router stopped")

	return code
}

// runWebhook serves the admission webhook until ctx is done, starting it
// again after a failure such as a missing certificate.
func runWebhook(ctx context.Context, start func(context.Context) error, cfg *config, log *slog.Logger) {
	for {
		err := start(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Error("webhook server failed, retrying", "port", cfg.webhookPort, "cert_dir", cfg.webhookCertDir,
			"retry_in", webhookRetryDelay.String(), "err", err)

		select {
		case <-ctx.Done():
			return
		case <-time.After(webhookRetryDelay):
		}
	}
}

// loadRESTConfig reads the kubeconfig file, or the in-cluster configuration
// when path is empty.
func loadRESTConfig(path string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if path == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no kubeconfig given and not running in a cluster (%w); set --kubeconfig or KUBECONFIG", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
		}
	}

	cfg.UserAgent = "caddy-k8s-router"
	cfg.QPS, cfg.Burst = 50, 100

	return cfg, nil
}

// registerRuntimeMetrics registers the Go runtime and process collectors.
func registerRuntimeMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}

	return nil
}

// probeInterval maps the flag's 0, which turns the probe off, to the
// controller's negative value.
func probeInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}

	return d
}

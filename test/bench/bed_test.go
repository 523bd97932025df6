package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// probeRouteID is the @id of a static route that the benchmarks change to
// make Caddy reload without the router: one bare admin API change.
const probeRouteID = "bench-reload-probe"

// probeRoute is a static route that matches a host no benchmark requests.
const probeRoute = `{"@id": "bench-reload-probe", "match": [{"host": ["reload-probe.bench.test"]}],
  "handle": [{"handler": "static_response", "body": "probe"}]}`

// bed is one control plane shared by the sites of a benchmark.
type bed struct {
	cp     *testbed.ControlPlane
	client kubernetes.Interface
	// kubelet is the kubelet stand-in, or nil when the benchmark writes pod
	// status itself.
	kubelet *testbed.Kubelet
}

// bedOptions selects the parts of a bed.
type bedOptions struct {
	// controllers starts kube-controller-manager and the kubelet stand-in,
	// so that Deployments get ReplicaSets and running pods. Without it the
	// benchmark creates pods itself.
	controllers bool
}

// startBed starts a control plane, stopped when tb ends. It skips tb when
// the test-bed binaries are missing, except under CI.
func startBed(tb testing.TB, opts bedOptions) *bed {
	tb.Helper()
	ctx := context.Background()

	cp, err := testbed.StartControlPlane(ctx, testbed.ControlPlaneOptions{ControllerManager: opts.controllers})
	if testbed.SkipIfMissing(err) {
		tb.Skipf("skipping benchmark: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			tb.Errorf("stopping the control plane: %v", err)
		}
	})

	bd := &bed{cp: cp, client: cp.Clientset}
	if opts.controllers {
		bd.kubelet, err = testbed.StartKubelet(ctx, cp.Clientset, testbed.KubeletOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(bd.kubelet.Stop)
	}

	return bd
}

// site is one namespace with its own Caddy, admin proxy and router.
type site struct {
	tb     testing.TB
	bed    *bed
	ns     string
	caddy  *testbed.Caddy
	admin  *adminProxy
	router *e2eutil.Router

	closeOnce sync.Once
}

// siteOptions changes how newSite starts the router.
type siteOptions struct {
	// routerArgs are appended to the router's flags.
	routerArgs []string
	// webhookArgs, when set, replace --webhook-port=0.
	webhookArgs []string
	// noRouter starts only the namespace, Caddy and the admin proxy; call
	// startRouter later.
	noRouter bool
}

// newSite creates namespace ns and starts Caddy, the admin proxy and the
// router for it. Close stops them; tb's cleanup does too.
func (bd *bed) newSite(tb testing.TB, ns string, opts siteOptions) *site {
	tb.Helper()
	ctx := context.Background()

	if err := bd.cp.CreateNamespace(ctx, ns, nil); err != nil {
		tb.Fatal(err)
	}

	caddy, err := testbed.StartCaddy(ctx, testbed.CaddyOptions{})
	if testbed.SkipIfMissing(err) {
		tb.Skipf("skipping benchmark: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	status, _, body, err := caddy.Admin(ctx, http.MethodPut, "/config/apps/http/servers/"+caddy.Server+"/routes/0", []byte(probeRoute))
	if err != nil || status != http.StatusOK {
		_ = caddy.Stop()
		tb.Fatalf("adding the probe route: status %d, %v: %s", status, err, body)
	}
	admin, err := startAdminProxy(caddy.AdminAddr)
	if err != nil {
		_ = caddy.Stop()
		tb.Fatal(err)
	}

	s := &site{tb: tb, bed: bd, ns: ns, caddy: caddy, admin: admin}
	tb.Cleanup(s.Close)
	if !opts.noRouter {
		s.startRouter(opts)
	}

	return s
}

// startRouter runs the router binary for the site's namespace and waits
// until /readyz returns 200.
func (s *site) startRouter(opts siteOptions) {
	tb := s.tb
	tb.Helper()

	args := []string{
		"--namespace=" + s.ns,
		"--base-domain=" + baseDomain,
		"--kubeconfig=" + s.bed.cp.KubeconfigPath,
		"--caddy-admin=" + s.admin.URL,
		"--log-format=text",
		"--log-level=warn",
	}
	if opts.webhookArgs != nil {
		args = append(args, opts.webhookArgs...)
	} else {
		args = append(args, "--webhook-port=0")
	}
	args = append(args, opts.routerArgs...)

	router, err := e2eutil.StartRouter(routerBinary(tb), args)
	if err != nil {
		tb.Fatal(err)
	}
	s.router = router
	if err := router.WaitReady(context.Background(), 2*time.Minute); err != nil {
		tb.Fatalf("%v; log:\n%s", err, tail(router.Log(), 4096))
	}
}

// Close stops the router, the admin proxy and Caddy. Calling it again does
// nothing.
func (s *site) Close() {
	s.closeOnce.Do(func() {
		if s.router != nil {
			if err := s.router.Stop(10 * time.Second); err != nil {
				s.tb.Error(err)
			}
			if s.tb.Failed() {
				s.tb.Logf("router log:\n%s", tail(s.router.Log(), 8192))
			}
		}
		_ = s.admin.Close()
		if err := s.caddy.Stop(); err != nil {
			s.tb.Error(err)
		}
	})
}

// host returns the host the router gives the Deployment name.
func host(name string) string {
	return name + "." + baseDomain
}

// metric returns the sum of the router's metric samples named name whose
// labels contain every one of labels (such as `result="written"`).
func (s *site) metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get(s.router.HealthURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()

	var sum float64
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if !containsAll(line, labels) {
			continue
		}
		value, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("parsing metric line %q: %w", line, err)
		}
		sum += value
	}

	return sum, scanner.Err()
}

// waitSettled waits until the router has synced at least minSyncs
// Deployments in all, its sync count has stopped changing for a second, and
// the admin proxy has been idle for that second too.
func (s *site) waitSettled(ctx context.Context, minSyncs float64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	last, lastChange := -1.0, time.Now()
	for {
		syncs, err := s.metric("caddy_k8s_router_reconcile_duration_seconds_count")
		if err != nil {
			return err
		}
		if syncs != last {
			last, lastChange = syncs, time.Now()
		}
		if syncs >= minSyncs && time.Since(lastChange) >= time.Second {
			return s.admin.WaitIdle(ctx, time.Second)
		}

		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the router to settle at %v of %v syncs: %w", last, minSyncs, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// statusKiB returns a field of /proc/<pid>/status in KiB, such as VmRSS.
func statusKiB(pid int, field string) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}

	for line := range strings.SplitSeq(string(data), "\n") {
		value, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s of pid %d: %w", field, pid, err)
		}
		return kib, nil
	}

	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func containsAll(line string, parts []string) bool {
	for _, part := range parts {
		if !strings.Contains(line, part) {
			return false
		}
	}

	return true
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}

	return s[len(s)-n:]
}

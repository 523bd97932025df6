package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/caddy-k8s-router/caddy-k8s-router/caddyapi"
)

// The benchmarks in this file measure the reverse_proxy settings that the
// router writes into every route, each with 0 (Caddy's own default) and with
// the router's default.

const (
	// rolloutClients is how many clients send requests during a rolling
	// update, each one at a time with rolloutPause between requests.
	rolloutClients = 4
	rolloutPause   = 5 * time.Millisecond
	// rolloutReplicas is the size of the Deployment that is rolled.
	rolloutReplicas = 3
	// rollouts is how many Deployments each case rolls.
	rollouts = 5
)

// BenchmarkTryDuration rolls a Deployment of three pods to a new template
// while clients send requests through Caddy, and counts the requests that
// fail. The kubelet stand-in stops a pod's backend as soon as the pod is
// deleted, before the router has removed it from the upstreams, so a
// request can reach a closed port.
//
// Metrics: failed-requests and requests, and p99-ms of the requests that
// succeeded.
func BenchmarkTryDuration(b *testing.B) {
	bd := startBed(b, bedOptions{controllers: true})

	for _, setting := range []time.Duration{0, caddyapi.DefaultTryDuration} {
		b.Run(fmt.Sprintf("try-duration=%s", setting), func(b *testing.B) {
			s := bd.newSite(b, fmt.Sprintf("try-%d", int(setting.Seconds())), siteOptions{
				routerArgs: []string{"--try-duration=" + setting.String()},
			})

			var requests, failures int64
			var latencies []time.Duration
			kinds := map[string]int{}
			b.ResetTimer()
			for i := range b.N * rollouts {
				result := s.rollUnderLoad(b, fmt.Sprintf("web-%d", i))
				requests += result.requests
				failures += result.failures
				latencies = append(latencies, result.latencies...)
				for kind, n := range result.kinds {
					kinds[kind] += n
				}
			}
			b.StopTimer()

			b.Logf("try-duration=%s: %d of %d requests failed in %d rollouts (%v); p50 %.1f ms, p99 %.1f ms",
				setting, failures, requests, b.N*rollouts, kinds, ms(percentile(latencies, 50)), ms(percentile(latencies, 99)))
			b.ReportMetric(float64(failures), "failed-requests")
			b.ReportMetric(float64(requests), "requests")
			b.ReportMetric(ms(percentile(latencies, 99)), "p99-ms")
		})
	}
}

// rolloutResult counts the requests sent during one rolling update.
type rolloutResult struct {
	requests, failures int64
	// kinds counts the failures by status code or error.
	kinds map[string]int
	// latencies are those of the successful requests.
	latencies []time.Duration
}

// rollUnderLoad creates the Deployment name, waits until each pod has
// served a request, then rolls it to a new template while rolloutClients
// send requests, and stops them once every new pod has served one.
func (s *site) rollUnderLoad(b *testing.B, name string) rolloutResult {
	b.StopTimer()
	ctx := context.Background()
	deployments := s.bed.client.AppsV1().Deployments(s.ns)
	probe := newProber(s.caddy)

	d := workspaceDeployment(name)
	d.Spec.Replicas = ptr.To[int32](rolloutReplicas)
	if _, err := deployments.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	before := s.waitServedBy(b, probe, name, nil)

	// clients
	var (
		result = rolloutResult{kinds: map[string]int{}}
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	loadCtx, stop := context.WithCancel(ctx)
	for range rolloutClients {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				start := time.Now()
				status, _, err := probe.get(loadCtx, host(name))
				elapsed := time.Since(start)
				if loadCtx.Err() != nil {
					return
				}

				mu.Lock()
				result.requests++
				switch {
				case err != nil:
					result.failures++
					result.kinds[err.Error()]++
				case status != http.StatusOK:
					result.failures++
					result.kinds[fmt.Sprintf("status %d", status)]++
				default:
					result.latencies = append(result.latencies, elapsed)
				}
				mu.Unlock()
				time.Sleep(rolloutPause)
			}
		})
	}

	// the rollout, until every new pod has served a request
	b.StartTimer()
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{"rollout":"%d"}}}}}`, time.Now().UnixNano())
	if _, err := deployments.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		b.Fatal(err)
	}
	s.waitServedBy(b, probe, name, before)
	b.StopTimer()
	stop()
	wg.Wait()

	if result.requests == 0 {
		b.Fatal("the clients sent no request during the rollout")
	}

	return result
}

// waitServedBy waits until rolloutReplicas pods of the Deployment name,
// none of them in old, have served a request through Caddy, and returns
// their names.
func (s *site) waitServedBy(b *testing.B, probe *prober, name string, old map[string]bool) map[string]bool {
	b.Helper()

	seen := map[string]bool{}
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		status, body, err := probe.get(ctx, host(name))
		if err == nil && status == http.StatusOK && !old[body] {
			seen[body] = true
		}
		return len(seen) >= rolloutReplicas, nil
	})
	if err != nil {
		b.Fatalf("waiting for %d new pods of %s to answer (seen %v): %v", rolloutReplicas, name, seen, err)
	}

	return seen
}

// websocketCount is how many websockets BenchmarkStreamCloseDelay opens.
const websocketCount = 10

// BenchmarkStreamCloseDelay opens websockets through Caddy to one
// workspace, lets the router add the route of another workspace, which
// reloads Caddy, and then checks which websockets still echo a message.
//
// Metric: websockets-survived, out of 10.
func BenchmarkStreamCloseDelay(b *testing.B) {
	bd := startBed(b, bedOptions{})

	for _, setting := range []time.Duration{0, caddyapi.DefaultStreamCloseDelay} {
		b.Run(fmt.Sprintf("stream-close-delay=%s", setting), func(b *testing.B) {
			ctx := context.Background()
			s := bd.newSite(b, fmt.Sprintf("stream-%d", int(setting.Seconds())), siteOptions{
				routerArgs: []string{"--stream-close-delay=" + setting.String()},
			})
			probe := newProber(s.caddy)

			var survived int
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				first, err := s.createWorkspaces(ctx, []string{fmt.Sprintf("ws-%d", 2*i)}, true, true)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := probe.waitRoutable(ctx, host(first[0].name), first[0].pod, pollInterval, nil); err != nil {
					b.Fatal(err)
				}
				conns, err := openWebsockets(s.caddy.HTTPAddr, host(first[0].name), websocketCount)
				if err != nil {
					b.Fatal(err)
				}

				// an unrelated workspace, routed by another reload
				b.StartTimer()
				writes := s.admin.WriteCount()
				second, err := s.createWorkspaces(ctx, []string{fmt.Sprintf("ws-%d", 2*i+1)}, true, true)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := probe.waitRoutable(ctx, host(second[0].name), second[0].pod, pollInterval, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if s.admin.WriteCount() == writes {
					b.Fatal("routing the second workspace did not write to Caddy")
				}

				for _, ws := range conns {
					if echoes(ws) {
						survived++
					}
					_ = ws.Close()
				}
			}

			b.Logf("stream-close-delay=%s: %d of %d websockets survived a reload", setting, survived, b.N*websocketCount)
			b.ReportMetric(float64(survived)/float64(b.N), "websockets-survived")
		})
	}
}

// openWebsockets opens n websockets to host through Caddy at addr and
// checks that each echoes a message.
func openWebsockets(addr, host string, n int) ([]*websocket.Conn, error) {
	var conns []*websocket.Conn
	for range n {
		config, err := websocket.NewConfig("ws://"+host+"/", "http://"+host)
		if err != nil {
			return nil, err
		}
		tcp, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, err
		}
		ws, err := websocket.NewClient(config, tcp)
		if err != nil {
			_ = tcp.Close()
			return nil, fmt.Errorf("opening a websocket to %s through Caddy: %w", host, err)
		}
		if !echoes(ws) {
			return nil, fmt.Errorf("a new websocket to %s did not echo", host)
		}
		conns = append(conns, ws)
	}

	return conns, nil
}

// echoes reports whether ws echoes one message within two seconds.
func echoes(ws *websocket.Conn) bool {
	_ = ws.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := ws.Write([]byte("ping")); err != nil {
		return false
	}

	reply := make([]byte, 4)
	n, err := ws.Read(reply)

	return err == nil && string(reply[:n]) == "ping"
}

const (
	// keepAliveWorkspaces is how many routed workspaces get traffic
	// between the reloads of BenchmarkKeepAliveIdle.
	keepAliveWorkspaces = 20
	// keepAliveRun is how long the benchmark reloads Caddy: longer than
	// the router's default idle timeout of 30s.
	keepAliveRun = 60 * time.Second
	// keepAliveRound is the time between two reloads.
	keepAliveRound = 100 * time.Millisecond
)

// BenchmarkKeepAliveIdle routes 20 workspaces, then for a minute sends one
// request to each and reloads Caddy with a bare admin API change, every
// 100 ms. Each reload replaces every route's upstream transport. It then
// reads Caddy's memory and open file descriptors. With 0 the router writes
// no transport, so Caddy uses its default one with an idle timeout of 2m.
// The other cases write an explicit "http" transport with that timeout.
//
// Metrics: caddy-rss-mb (VmRSS), caddy-fds (open file descriptors) and
// reloads.
func BenchmarkKeepAliveIdle(b *testing.B) {
	bd := startBed(b, bedOptions{})

	for _, setting := range []time.Duration{0, 2 * time.Minute, caddyapi.DefaultKeepAliveIdle} {
		b.Run(fmt.Sprintf("keepalive-idle=%s", setting), func(b *testing.B) {
			ctx := context.Background()
			s := bd.newSite(b, fmt.Sprintf("keepalive-%d", int(setting.Seconds())), siteOptions{
				routerArgs: []string{"--keepalive-idle=" + setting.String()},
			})
			workspaces, err := s.createWorkspaces(ctx, names("ws", keepAliveWorkspaces), true, true)
			if err != nil {
				b.Fatal(err)
			}
			waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if _, err := s.admin.WaitOwned(waitCtx, keepAliveWorkspaces); err != nil {
				b.Fatal(err)
			}
			probe := newProber(s.caddy)

			var rssMiB float64
			var fds, reloads int
			b.ResetTimer()
			for range b.N {
				// traffic and a reload every round
				end := time.Now().Add(keepAliveRun)
				for time.Now().Before(end) {
					if err := probe.checkAllRoutable(ctx, workspaces); err != nil {
						b.Fatal(err)
					}
					if _, err := reloadProbe(ctx, s.caddy, reloads); err != nil {
						b.Fatal(err)
					}
					reloads++
					time.Sleep(keepAliveRound)
				}

				kib, err := statusKiB(s.caddy.PID(), "VmRSS")
				if err != nil {
					b.Fatal(err)
				}
				rssMiB = kib / 1024
				if fds, err = openFDs(s.caddy.PID()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()

			b.Logf("keepalive-idle=%s: after %d reloads Caddy has RSS %.1f MiB and %d open fds", setting, reloads, rssMiB, fds)
			b.ReportMetric(rssMiB, "caddy-rss-mb")
			b.ReportMetric(float64(fds), "caddy-fds")
			b.ReportMetric(float64(reloads)/float64(b.N), "reloads")
		})
	}
}

// openFDs returns the number of open file descriptors of pid.
func openFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}

	return len(entries), nil
}

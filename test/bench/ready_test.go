package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-k8s-router/caddy-k8s-router/caddyapi"
	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// readySamples is how many workspaces each ReadyToRoutable case turns
// Ready, one at a time, and how many bare reloads it times between them.
const readySamples = 30

// pollInterval is the pause between two requests that check whether a host
// is routed through Caddy, once the router has written to Caddy. It bounds
// the resolution of the latencies.
const pollInterval = 2 * time.Millisecond

// foreignIDPrefix starts the @id of the routes that stand in for other
// workspaces. The router does not own them and leaves them alone.
const foreignIDPrefix = "bench-foreign."

// BenchmarkReadyToRoutable measures, for one workspace at a time, the time
// from the write of its pod's Ready status to the API server until the
// first 200 from its pod through Caddy. The routes=N cases first load N
// routes of the router's shape under another @id prefix, so that every
// reload costs what it costs with N workspaces. Between samples each case
// times one bare admin API change at the same route count, and one write of
// the whole routes array as the router sends it, which it only logs.
//
// Metrics: p50-ms and p99-ms of the latency, reload-p50-ms of the bare
// change.
func BenchmarkReadyToRoutable(b *testing.B) {
	bd := startBed(b, bedOptions{})

	for _, routes := range []int{0, 1000, 2500, 5000} {
		b.Run(fmt.Sprintf("routes=%d", routes), func(b *testing.B) {
			benchReadyToRoutable(b, bd, routes)
		})
	}
}

func benchReadyToRoutable(b *testing.B, bd *bed, routes int) {
	ctx := context.Background()
	s := bd.newSite(b, fmt.Sprintf("ready-%d", routes), siteOptions{})
	if err := loadForeignRoutes(ctx, s.caddy, routes); err != nil {
		b.Fatal(err)
	}
	probe := newProber(s.caddy)

	var latencies, reloads, arrayReloads []time.Duration
	var phases readyPhases
	writesBefore := s.admin.WriteCount()
	b.ResetTimer()
	for i := range b.N * readySamples {
		b.StopTimer()

		// a workspace whose pod runs but is not Ready, seen by the router
		workspaces, err := s.createWorkspaces(ctx, []string{fmt.Sprintf("ws-%d", i)}, true, false)
		if err != nil {
			b.Fatal(err)
		}
		ws := workspaces[0]
		if err := s.waitSettled(ctx, float64(i+1), time.Minute); err != nil {
			b.Fatal(err)
		}

		// one bare reload at this route count
		reload, err := reloadProbe(ctx, s.caddy, i)
		if err != nil {
			b.Fatal(err)
		}
		reloads = append(reloads, reload)
		arrayReload, err := reloadProbeArray(ctx, s.caddy, i)
		if err != nil {
			b.Fatal(err)
		}
		arrayReloads = append(arrayReloads, arrayReload)

		// Ready, then poll until its pod responds
		b.StartTimer()
		start := time.Now()
		if err := s.setReady(ctx, ws, true); err != nil {
			b.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		wrote := func() bool { return s.admin.WroteSince(start) }
		routed, err := probe.waitRoutable(waitCtx, host(ws.name), ws.pod, pollInterval, wrote)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, routed.Sub(start))
		phases.add(start, routed, s.admin.RequestsSince(start))
	}
	b.StopTimer()

	writes := s.admin.WriteCount() - writesBefore
	b.Logf("routes=%d: %d samples, %d admin writes; latencies %v; bare reloads %v", routes, len(latencies), writes, latencies, reloads)
	b.Logf("routes=%d: p50 of each phase: %s", routes, phases)
	b.Logf("routes=%d: p50 of a bare reload %.1f ms, of a write of the whole routes array %.1f ms", routes,
		ms(percentile(reloads, 50)), ms(percentile(arrayReloads, 50)))
	b.ReportMetric(ms(percentile(latencies, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(latencies, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(reloads, 50)), "reload-p50-ms")
}

// loadForeignRoutes writes n routes of the router's shape, with default
// proxy settings, under foreignIDPrefix, in one write. Their hosts are
// never requested, and their upstream is the discard port of 127.0.0.1.
func loadForeignRoutes(ctx context.Context, caddy *testbed.Caddy, n int) error {
	if n == 0 {
		return nil
	}

	client, err := caddyapi.New(caddyapi.Config{
		AdminURL: caddy.AdminURL,
		IDPrefix: foreignIDPrefix,
		Timeout:  5 * time.Minute,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}

	specs := make([]caddyapi.RouteSpec, n)
	for i := range specs {
		name := fmt.Sprintf("foreign-%d", i)
		specs[i] = caddyapi.RouteSpec{ID: foreignIDPrefix + name, Hosts: []string{host(name)}, Dials: []string{"127.0.0.1:9"}}
	}
	if _, err := client.Apply(ctx, specs); err != nil {
		return fmt.Errorf("loading %d foreign routes: %w", n, err)
	}

	return nil
}

// readyPhases splits Ready-to-routable latencies at the router's admin
// requests, as the admin proxy saw them.
type readyPhases struct {
	// react: from the Ready write to the start of the router's GET.
	react []time.Duration
	// read: the GET of the routes array.
	read []time.Duration
	// plan: from the GET's response to the start of the write.
	plan []time.Duration
	// write: the write, including Caddy's reload.
	write []time.Duration
	// seen: from the write's response to the first 200 of the poll.
	seen []time.Duration
}

// add records the phases of one sample from the requests that followed
// the Ready write at start. A sample without a GET followed by a write is
// left out.
func (p *readyPhases) add(start, routed time.Time, requests []adminRequest) {
	for i := 0; i+1 < len(requests); i++ {
		get, write := requests[i], requests[i+1]
		if get.method != http.MethodGet || write.method == http.MethodGet {
			continue
		}

		p.react = append(p.react, get.start.Sub(start))
		p.read = append(p.read, get.done.Sub(get.start))
		p.plan = append(p.plan, write.start.Sub(get.done))
		p.write = append(p.write, write.done.Sub(write.start))
		p.seen = append(p.seen, routed.Sub(write.done))
		return
	}
}

// String returns the p50 of each phase in milliseconds.
func (p readyPhases) String() string {
	return fmt.Sprintf("react %.1f, read %.1f, plan %.1f, write %.1f, seen %.1f (ms, %d samples)",
		ms(percentile(p.react, 50)), ms(percentile(p.read, 50)), ms(percentile(p.plan, 50)),
		ms(percentile(p.write, 50)), ms(percentile(p.seen, 50)), len(p.react))
}

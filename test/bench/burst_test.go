package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// burstTimeout bounds one burst until every workspace is routable. The
// naive mode at 1,000 Deployments needs minutes.
const burstTimeout = 30 * time.Minute

// BenchmarkBurst measures how long it takes until every one of N
// Deployments is routable when all their pods turn Ready at once, and how
// many admin API writes, each a full Caddy reload, that took. It runs the
// same burst twice: with the router's coalescing, and with
// --write-per-change, which writes once per changed Deployment as a naive
// controller does.
//
// The pods are created directly with the owner reference and label the
// Deployment controller sets, running but not Ready, and the benchmark
// writes their Ready status from 16 goroutines. The time runs from the
// first Ready write until Caddy has accepted a write that holds all N
// routes.
//
// Metrics: all-routable-s and admin-writes with coalescing,
// naive-all-routable-s and naive-admin-writes without.
func BenchmarkBurst(b *testing.B) {
	bd := startBed(b, bedOptions{})

	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("deployments=%d", n), func(b *testing.B) {
			var coalesced, naive burstResult
			for i := range b.N {
				coalesced = runBurst(b, bd, fmt.Sprintf("burst-%d-%d", n, i), n, false)
				naive = runBurst(b, bd, fmt.Sprintf("burst-naive-%d-%d", n, i), n, true)
			}

			b.Logf("deployments=%d: coalesced %s; naive %s; speed-up %.1fx", n, coalesced, naive,
				naive.allRoutable.Seconds()/coalesced.allRoutable.Seconds())
			b.ReportMetric(coalesced.allRoutable.Seconds(), "all-routable-s")
			b.ReportMetric(float64(coalesced.writes), "admin-writes")
			b.ReportMetric(naive.allRoutable.Seconds(), "naive-all-routable-s")
			b.ReportMetric(float64(naive.writes), "naive-admin-writes")
		})
	}
}

// burstResult is the outcome of one burst.
type burstResult struct {
	allRoutable time.Duration
	// flip is how long the Ready writes took.
	flip   time.Duration
	writes int
}

func (r burstResult) String() string {
	return fmt.Sprintf("all routable after %.2fs (Ready writes took %.2fs) with %d admin writes",
		r.allRoutable.Seconds(), r.flip.Seconds(), r.writes)
}

// runBurst runs one burst of n workspaces in namespace ns, with its own
// Caddy and router, and stops them before it returns.
func runBurst(b *testing.B, bd *bed, ns string, n int, naive bool) burstResult {
	b.StopTimer()
	ctx := context.Background()

	opts := siteOptions{}
	if naive {
		opts.routerArgs = []string{"--write-per-change=true"}
	}
	s := bd.newSite(b, ns, opts)
	defer s.Close()

	// n workspaces whose pods run but are not Ready, seen by the router
	workspaces, err := s.createWorkspaces(ctx, names("ws", n), true, false)
	if err != nil {
		b.Fatal(err)
	}
	defer closeBackends(workspaces)
	if err := s.waitSettled(ctx, float64(n), 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	writesBefore := s.admin.WriteCount()

	// all Ready at once
	b.StartTimer()
	start := time.Now()
	err = parallel(ctx, n, func(ctx context.Context, i int) error {
		return s.setReady(ctx, workspaces[i], true)
	})
	if err != nil {
		b.Fatal(err)
	}
	flip := time.Since(start)

	waitCtx, cancel := context.WithTimeout(ctx, burstTimeout)
	defer cancel()
	last, err := s.admin.WaitOwned(waitCtx, n)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	// every host responds, and no write follows
	if err := newProber(s.caddy).checkAllRoutable(ctx, workspaces); err != nil {
		b.Fatal(err)
	}
	if err := s.waitSettled(ctx, float64(n), 5*time.Minute); err != nil {
		b.Fatal(err)
	}

	if !naive {
		b.Logf("%s: each admin write as start+duration:routes, in seconds after the first Ready write: %s",
			ns, writeTimeline(s.admin.Writes()[writesBefore:], start))
	}

	return burstResult{allRoutable: last.done.Sub(start), flip: flip, writes: s.admin.WriteCount() - writesBefore}
}

// writeTimeline formats writes as "start+duration:routes" in seconds after
// start, where routes is the number of owned routes written.
func writeTimeline(writes []adminRequest, start time.Time) string {
	parts := make([]string, len(writes))
	for i, w := range writes {
		parts[i] = fmt.Sprintf("%.2f+%.2f:%d", w.start.Sub(start).Seconds(), w.done.Sub(w.start).Seconds(), w.owned)
	}

	return strings.Join(parts, " ")
}

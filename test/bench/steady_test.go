package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

const (
	// steadyWorkspaces is how many routed Deployments the steady state
	// holds.
	steadyWorkspaces = 1000
	// steadyResync is the router's informer resync period in
	// BenchmarkSteadyState; the benchmark watches three of them.
	steadyResync = 10 * time.Second
	// steadyUpdateInterval is the pause between two pod updates, about 50
	// updates a second.
	steadyUpdateInterval = 20 * time.Millisecond
)

// BenchmarkSteadyState routes 1,000 Deployments, then watches the router
// for three informer resync periods while pods get updates that do not
// change routing: a container restart count in the status, and an
// annotation. The drift check runs at its default interval.
//
// Metric: admin-writes during the three periods.
func BenchmarkSteadyState(b *testing.B) {
	bd := startBed(b, bedOptions{})
	ctx := context.Background()

	s := bd.newSite(b, "steady", siteOptions{routerArgs: []string{"--resync-period=" + steadyResync.String()}})
	workspaces, err := s.createWorkspaces(ctx, names("ws", steadyWorkspaces), false, true)
	if err != nil {
		b.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if _, err := s.admin.WaitOwned(waitCtx, steadyWorkspaces); err != nil {
		b.Fatal(err)
	}
	if err := s.waitSettled(ctx, steadyWorkspaces, 5*time.Minute); err != nil {
		b.Fatal(err)
	}

	var writes, reads int
	var updates atomic.Int64
	b.ResetTimer()
	for range b.N {
		writesBefore, readsBefore := s.admin.WriteCount(), s.admin.ReadCount()

		// status-only and annotation updates for three resync periods
		updateCtx, stop := context.WithTimeout(ctx, 3*steadyResync+time.Second)
		i := 0
		wait.Until(func() {
			ws := workspaces[i%len(workspaces)]
			var err error
			if i%2 == 0 {
				err = s.bumpRestartCount(updateCtx, ws)
			} else {
				err = s.annotatePod(updateCtx, ws, i)
			}
			if err == nil {
				updates.Add(1)
			} else if updateCtx.Err() == nil {
				b.Errorf("updating pod %s: %v", ws.pod, err)
			}
			i++
		}, steadyUpdateInterval, updateCtx.Done())
		stop()

		writes += s.admin.WriteCount() - writesBefore
		reads += s.admin.ReadCount() - readsBefore
	}
	b.StopTimer()

	b.Logf("%d pod updates over %d resync periods of %s: %d admin writes, %d admin reads", updates.Load(), 3*b.N, steadyResync, writes, reads)
	b.ReportMetric(float64(writes)/float64(b.N), "admin-writes")
}

// bumpRestartCount adds one to the restart count of the pod's container,
// as a kubelet does after the container restarts, keeping it Ready.
func (s *site) bumpRestartCount(ctx context.Context, ws *workspace) error {
	pods := s.bed.client.CoreV1().Pods(s.ns)

	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(ctx, ws.pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(pod.Status.ContainerStatuses) == 0 {
			return fmt.Errorf("pod %s/%s has no container status", s.ns, ws.pod)
		}
		pod.Status.ContainerStatuses[0].RestartCount++
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
}

// annotatePod sets an annotation on the pod that the router does not read.
func (s *site) annotatePod(ctx context.Context, ws *workspace, seq int) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"bench.caddy-k8s-router.test/seq":"%d"}}}`, seq)
	_, err := s.bed.client.CoreV1().Pods(s.ns).Patch(ctx, ws.pod, types.MergePatchType, patch, metav1.PatchOptions{})

	return err
}

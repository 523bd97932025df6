package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// lifecycleTimeout bounds each step of BenchmarkWorkspaceLifecycle.
const lifecycleTimeout = 2 * time.Minute

// BenchmarkWorkspaceLifecycle takes one workspace through its life with
// kube-controller-manager and the kubelet stand-in: create until routable,
// one container restart (the pod turns not Ready, then Ready again), scale
// to 0, scale to 1, delete. After each step it waits until the router and
// Caddy are idle, and counts the admin writes of the step.
//
// Metric: reloads, the admin writes, each a Caddy reload, of the whole life.
func BenchmarkWorkspaceLifecycle(b *testing.B) {
	bd := startBed(b, bedOptions{controllers: true})
	s := bd.newSite(b, "lifecycle", siteOptions{})

	var total int
	b.ResetTimer()
	for i := range b.N {
		steps := s.runLifecycle(b, fmt.Sprintf("ws-%d", i))

		var parts []string
		for _, step := range steps {
			total += step.writes
			parts = append(parts, fmt.Sprintf("%s %d", step.name, step.writes))
		}
		b.Logf("admin writes per step: %s", strings.Join(parts, ", "))
	}
	b.StopTimer()

	b.ReportMetric(float64(total)/float64(b.N), "reloads")
}

// lifecycleStep is one step of the life and its admin writes.
type lifecycleStep struct {
	name   string
	writes int
}

// runLifecycle runs every step for the workspace name and returns the
// writes of each.
func (s *site) runLifecycle(b *testing.B, name string) []lifecycleStep {
	ctx := context.Background()
	deployments := s.bed.client.AppsV1().Deployments(s.ns)
	probe := newProber(s.caddy)
	var steps []lifecycleStep

	step := func(stepName string, act func() error, routable bool) {
		b.Helper()
		before := s.admin.WriteCount()
		if err := act(); err != nil {
			b.Fatalf("%s: %v", stepName, err)
		}
		if err := s.waitHost(ctx, probe, name, routable); err != nil {
			b.Fatalf("%s: %v", stepName, err)
		}
		if err := s.admin.WaitIdle(ctx, 2*time.Second); err != nil {
			b.Fatal(err)
		}
		steps = append(steps, lifecycleStep{name: stepName, writes: s.admin.WriteCount() - before})
	}

	step("create", func() error {
		_, err := deployments.Create(ctx, workspaceDeployment(name), metav1.CreateOptions{})
		return err
	}, true)

	step("restart", func() error {
		pod, err := s.onlyPod(ctx, name)
		if err != nil {
			return err
		}
		if err := s.bed.kubelet.SetReady(s.ns, pod, false); err != nil {
			return err
		}
		if err := s.waitHost(ctx, probe, name, false); err != nil {
			return err
		}
		return s.bed.kubelet.SetReady(s.ns, pod, true)
	}, true)

	step("scale-to-0", func() error { return s.scale(ctx, name, 0) }, false)
	step("scale-to-1", func() error { return s.scale(ctx, name, 1) }, true)
	step("delete", func() error {
		return deployments.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
	}, false)

	return steps
}

// waitHost waits until the workspace's host gets a 200 through Caddy, or
// until it falls through to the catch-all when routable is false.
func (s *site) waitHost(ctx context.Context, probe *prober, name string, routable bool) error {
	want := http.StatusNotFound
	if routable {
		want = http.StatusOK
	}

	return wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, lifecycleTimeout, true, func(ctx context.Context) (bool, error) {
		status, body, err := probe.get(ctx, host(name))
		if err != nil {
			return false, nil
		}
		if !routable && body+"\n" != testbed.CatchAllBody {
			return false, nil
		}
		return status == want, nil
	})
}

// onlyPod returns the name of the workspace's one running pod.
func (s *site) onlyPod(ctx context.Context, name string) (string, error) {
	list, err := s.bed.client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		return "", err
	}

	var running []string
	for _, pod := range list.Items {
		if pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning {
			running = append(running, pod.Name)
		}
	}
	if len(running) != 1 {
		return "", fmt.Errorf("workspace %s has running pods %v, want exactly one", name, running)
	}

	return running[0], nil
}

// scale sets the replicas of the workspace's Deployment.
func (s *site) scale(ctx context.Context, name string, replicas int32) error {
	deployments := s.bed.client.AppsV1().Deployments(s.ns)

	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := deployments.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = replicas
		_, err = deployments.UpdateScale(ctx, name, scale, metav1.UpdateOptions{})
		return err
	})
}

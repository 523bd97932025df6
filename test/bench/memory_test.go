package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
	"github.com/caddy-k8s-router/caddy-k8s-router/watch"
)

const (
	// memoryDeployments and memoryPodsPerDeployment size the cluster of
	// BenchmarkCacheMemory: 5,000 Deployments and 10,000 pods.
	memoryDeployments       = 5000
	memoryPodsPerDeployment = 2
	// memorySamples is how many RSS readings, one a second, the benchmark
	// takes once the router has settled.
	memorySamples = 10
)

// BenchmarkCacheMemory starts the router on a namespace that already holds
// 5,000 Deployments with two Ready pods each, and measures its memory once
// it has routed all of them. The objects carry the fields of typical
// workspace pods (environment, resources, probes, volumes), which the
// router's informers drop before caching.
//
// Metrics: heap-mb, the median of go_memstats_heap_inuse_bytes from the
// router's /metrics, and rss-mb, the median VmRSS, both over ten seconds
// and in MiB.
func BenchmarkCacheMemory(b *testing.B) {
	bd := startBed(b, bedOptions{})
	ctx := context.Background()

	s := bd.newSite(b, "memory", siteOptions{noRouter: true})
	if err := s.createBulkyWorkspaces(ctx, memoryDeployments); err != nil {
		b.Fatal(err)
	}

	if *goMemLimit != "" {
		// The router inherits the environment of this process, whose own
		// Go runtime reads GOMEMLIMIT only when it starts.
		b.Setenv("GOMEMLIMIT", *goMemLimit)
	}

	var heapMiB, rssMiB, peakMiB float64
	b.ResetTimer()
	for range b.N {
		s.startRouter(siteOptions{})
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		if _, err := s.admin.WaitOwned(waitCtx, memoryDeployments); err != nil {
			b.Fatal(err)
		}
		cancel()
		if err := s.waitSettled(ctx, memoryDeployments, 5*time.Minute); err != nil {
			b.Fatal(err)
		}

		// read the memory of the settled router
		pid := s.router.Process().PID()
		var rss, heap []float64
		for range memorySamples {
			kib, err := statusKiB(pid, "VmRSS")
			if err != nil {
				b.Fatal(err)
			}
			rss = append(rss, kib/1024)
			inuse, err := s.metric("go_memstats_heap_inuse_bytes")
			if err != nil {
				b.Fatal(err)
			}
			heap = append(heap, inuse/(1<<20))
			time.Sleep(time.Second)
		}
		peak, err := statusKiB(pid, "VmHWM")
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(rss)
		slices.Sort(heap)
		rssMiB, heapMiB, peakMiB = rss[len(rss)/2], heap[len(heap)/2], peak/1024

		if err := s.router.Stop(10 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()

	inProcess, err := measureInProcessHeap(ctx, bd, s.ns, memoryDeployments)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("the controller run in this process holds %.1f MiB of live heap", float64(inProcess)/(1<<20))

	b.Logf("%d Deployments, %d pods: heap in use %.1f MiB, RSS %.1f MiB, peak RSS %.1f MiB",
		memoryDeployments, memoryDeployments*memoryPodsPerDeployment, heapMiB, rssMiB, peakMiB)
	b.ReportMetric(heapMiB, "heap-mb")
	b.ReportMetric(rssMiB, "rss-mb")
}

// createBulkyWorkspaces creates n Deployments with memoryPodsPerDeployment
// Ready pods each, all with the fields of typical workspaces. No backend
// listens on their addresses.
func (s *site) createBulkyWorkspaces(ctx context.Context, n int) error {
	return parallel(ctx, n, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("ws-%d", i)
		d := workspaceDeployment(name)
		d.Spec.Template.Spec = bulkyPodSpec(name)
		if _, err := s.bed.client.AppsV1().Deployments(s.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating deployment %s/%s: %w", s.ns, name, err)
		}

		for replica := range memoryPodsPerDeployment {
			pod := workspacePod(name)
			pod.Name = fmt.Sprintf("%s-%s-%d", name, templateHash, replica)
			pod.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
			pod.Spec = bulkyPodSpec(name)
			pod.Spec.NodeName = "node-" + strconv.Itoa(i%50)
			created, err := s.bed.client.CoreV1().Pods(s.ns).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("creating pod %s/%s: %w", s.ns, pod.Name, err)
			}

			setPodStatus(created, backends.unusedIP(), true)
			if _, err := s.bed.client.CoreV1().Pods(s.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("writing the status of pod %s/%s: %w", s.ns, pod.Name, err)
			}
		}
		return nil
	})
}

// bulkyPodSpec returns the pod spec of a typical workspace: one container
// with environment variables, resources, probes and volumes.
func bulkyPodSpec(name string) corev1.PodSpec {
	env := make([]corev1.EnvVar, 0, 12)
	for i := range 12 {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("WORKSPACE_SETTING_%d", i), Value: fmt.Sprintf("value-%d-for-%s", i, name)})
	}
	probe := &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
		PeriodSeconds:    10,
		FailureThreshold: 3,
	}

	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "workspace",
			Image: "registry.example.invalid/workspaces/ide:2026.1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: workspacePort}},
			Env:   env,
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
			},
			ReadinessProbe: probe,
			LivenessProbe:  probe,
			VolumeMounts: []corev1.VolumeMount{
				{Name: "home", MountPath: "/home/user"},
				{Name: "config", MountPath: "/etc/workspace", ReadOnly: true},
			},
			SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false)},
		}},
		Volumes: []corev1.Volume{
			{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: name + "-config"},
			}}},
		},
	}
}

// goMemLimit, when set, is the GOMEMLIMIT of the router process in
// BenchmarkCacheMemory, to measure how much a soft memory limit saves.
var goMemLimit = flag.String("bench.gomemlimit", "", "GOMEMLIMIT of the router in BenchmarkCacheMemory, such as 48MiB; empty leaves it unset")

// heapProfile, when set, names a file for a heap profile of the router's
// controller run inside the benchmark process; see measureInProcessHeap.
var heapProfile = flag.String("bench.heapprofile", "", "write a heap profile of the in-process controller of BenchmarkCacheMemory to this file")

// countingWriter is a watch.RouteWriter that writes nothing and stores the
// number of routes of the last call.
type countingWriter struct {
	routes atomic.Int64
}

func (w *countingWriter) SetRoutes(_ context.Context, routes []watch.Route) (watch.Change, error) {
	w.routes.Store(int64(len(routes)))
	return watch.Change{}, nil
}

// measureInProcessHeap runs the router's controller, as cmd/router builds
// it but with a writer that discards the routes, inside this process on the
// namespace ns. Once it has computed every route it returns by how many
// bytes the live heap grew, after a full GC, and writes a heap profile if
// -bench.heapprofile is set.
func measureInProcessHeap(ctx context.Context, bd *bed, ns string, wantRoutes int) (uint64, error) {
	namer, err := routing.NewNamer(baseDomain, routing.DefaultHostTemplate)
	if err != nil {
		return 0, err
	}
	config := rest.CopyConfig(bd.cp.Config)
	config.QPS, config.Burst = 50, 100
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return 0, err
	}

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// run the controller until it has computed every route
	writer := &countingWriter{}
	controller, err := watch.New(client, writer, watch.Options{
		Namespaces: []string{ns},
		Namer:      namer,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- controller.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		return writer.routes.Load() >= int64(wantRoutes), nil
	})
	if err != nil {
		return 0, fmt.Errorf("waiting for the in-process controller to compute %d routes: %w", wantRoutes, err)
	}

	// the live heap it holds
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if *heapProfile != "" {
		f, err := os.Create(*heapProfile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return 0, err
		}
	}

	return after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc), nil
}

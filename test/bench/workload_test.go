package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// workspacePort is the container port of every benchmark workspace.
const workspacePort = 8080

// templateHash is the pod-template-hash of every directly created pod. The
// Deployment controller derives it from the pod template; the router only
// needs the ReplicaSet name to end in it.
const templateHash = "6b7f9c8d5"

// clientWorkers is how many API requests the benchmarks send in parallel
// when they create or change many objects.
const clientWorkers = 16

// workspace is one Deployment with one pod, created directly through the
// API without kube-controller-manager.
type workspace struct {
	name string
	pod  string
	ip   string
	// backend serves the pod's port, or is nil for a workspace that
	// receives no traffic.
	backend *testbed.Backend
}

// workspaceDeployment returns the Deployment of a workspace with the route
// and port annotations already set, as the router's webhook sets the
// first, so that the router sends no annotation patch.
func workspaceDeployment(name string) *appsv1.Deployment {
	d := testbed.Deployment(name, 1, workspacePort)
	d.Annotations = map[string]string{
		routing.AnnotationRouteURL: host(name),
		routing.AnnotationPort:     fmt.Sprint(workspacePort),
	}

	return d
}

// workspacePod returns the pod that the Deployment controller would create
// for the workspace: owned by ReplicaSet <name>-<hash> with the
// pod-template-hash label, which is how the router finds its Deployment.
func workspacePod(name string) *corev1.Pod {
	d := workspaceDeployment(name)
	labels := map[string]string{"app": name, appsv1.DefaultDeploymentUniqueLabelKey: templateHash}

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name + "-" + templateHash + "-x7k2p",
			Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1",
				Kind:       "ReplicaSet",
				Name:       name + "-" + templateHash,
				UID:        uuid.NewUUID(),
				Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:   testbed.NodeName,
			Containers: d.Spec.Template.Spec.Containers,
		},
	}
}

// createWorkspaces creates a Deployment and a pod for each name, in
// parallel. With serve set, each pod gets a loopback address with a backend
// on the workspace port, else an address nothing listens on. The pods get
// a Running status with their address, Ready when ready is set.
func (s *site) createWorkspaces(ctx context.Context, names []string, serve, ready bool) ([]*workspace, error) {
	workspaces := make([]*workspace, len(names))
	for i, name := range names {
		ws := &workspace{name: name, pod: workspacePod(name).Name}
		if serve {
			backend, err := backends.start(ws.pod)
			if err != nil {
				closeBackends(workspaces)
				return nil, err
			}
			ws.backend = backend
			ws.ip, _, _ = net.SplitHostPort(backend.Addr)
		} else {
			ws.ip = backends.unusedIP()
		}
		workspaces[i] = ws
	}

	err := parallel(ctx, len(workspaces), func(ctx context.Context, i int) error {
		ws := workspaces[i]
		if _, err := s.bed.client.AppsV1().Deployments(s.ns).Create(ctx, workspaceDeployment(ws.name), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating deployment %s/%s: %w", s.ns, ws.name, err)
		}
		if _, err := s.bed.client.CoreV1().Pods(s.ns).Create(ctx, workspacePod(ws.name), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating pod %s/%s: %w", s.ns, ws.pod, err)
		}
		return s.setReady(ctx, ws, ready)
	})
	if err != nil {
		closeBackends(workspaces)
		return nil, err
	}
	s.tb.Cleanup(func() { closeBackends(workspaces) })

	return workspaces, nil
}

// setReady writes the pod's status as a kubelet does: Running, with its
// address, and Ready or not.
func (s *site) setReady(ctx context.Context, ws *workspace, ready bool) error {
	pod, err := s.bed.client.CoreV1().Pods(s.ns).Get(ctx, ws.pod, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("getting pod %s/%s: %w", s.ns, ws.pod, err)
	}

	setPodStatus(pod, ws.ip, ready)
	if _, err := s.bed.client.CoreV1().Pods(s.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing the status of pod %s/%s: %w", s.ns, ws.pod, err)
	}

	return nil
}

// setPodStatus fills in a running pod's status with ip and readiness.
func setPodStatus(pod *corev1.Pod, ip string, ready bool) {
	now := metav1.Now()
	condition := corev1.ConditionFalse
	if ready {
		condition = corev1.ConditionTrue
	}

	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = "127.0.0.1"
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	if pod.Status.StartTime == nil {
		pod.Status.StartTime = &now
	}
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: condition, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: condition, LastTransitionTime: now},
	}

	restarts := int32(0)
	if len(pod.Status.ContainerStatuses) > 0 {
		restarts = pod.Status.ContainerStatuses[0].RestartCount
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name:         pod.Spec.Containers[0].Name,
		Image:        pod.Spec.Containers[0].Image,
		Ready:        ready,
		Started:      ptr.To(true),
		RestartCount: restarts,
		State:        corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *pod.Status.StartTime}},
	}}
}

// names returns n names prefix-0 ... prefix-(n-1).
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}

	return out
}

func closeBackends(workspaces []*workspace) {
	for _, ws := range workspaces {
		if ws != nil && ws.backend != nil {
			_ = ws.backend.Close()
		}
	}
}

// parallel runs fn for 0..n-1 on clientWorkers goroutines and returns the
// first error. After an error it starts no new call.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	next := make(chan int)
	var wg sync.WaitGroup
	for range min(clientWorkers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}

	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()

	return context.Cause(ctx)
}

// backendPool hands out loopback addresses 127.x.y.z for pods, starting at
// a random point so that concurrent test binaries rarely collide. Linux
// routes all of 127.0.0.0/8 to the loopback interface.
type backendPool struct {
	mu   sync.Mutex
	next uint32
}

var backends = &backendPool{next: 200<<16 + rand.Uint32N(40<<16)}

// nextIP returns the next address, skipping .0 and .255.
func (p *backendPool) nextIP() string {
	p.mu.Lock()
	defer p.mu.Unlock()

	for {
		p.next++
		if p.next >= 254<<16 {
			p.next = 200<<16 + 1
		}
		if low := byte(p.next); low != 0 && low != 255 {
			return net.IPv4(127, byte(p.next>>16), byte(p.next>>8), low).String()
		}
	}
}

// start starts a backend named name on the workspace port of a free
// address.
func (p *backendPool) start(name string) (*testbed.Backend, error) {
	var lastErr error
	for range 64 {
		backend, err := testbed.StartBackend(p.nextIP(), workspacePort, name)
		if err == nil {
			return backend, nil
		}
		lastErr = err
	}

	return nil, fmt.Errorf("no free loopback address for backend %s: %w", name, lastErr)
}

// unusedIP returns an address for a pod that receives no traffic.
func (p *backendPool) unusedIP() string {
	return p.nextIP()
}

// prober sends requests through Caddy's HTTP server.
type prober struct {
	addr   string
	client *http.Client
}

func newProber(caddy *testbed.Caddy) *prober {
	return &prober{
		addr: caddy.HTTPAddr,
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
			Timeout:   30 * time.Second,
		},
	}
}

// get sends GET / for host and returns the status and body.
func (p *prober) get(ctx context.Context, host string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host

	resp, err := p.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))

	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// waitRoutable polls host until the pod responds through Caddy, and returns
// when that response arrived. It sends a request every interval once ready
// returns true, and every tenth interval before, so that the polling takes
// little CPU from Caddy while it reloads. A nil ready is always true.
func (p *prober) waitRoutable(ctx context.Context, host, pod string, interval time.Duration, ready func() bool) (time.Time, error) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	for tick := 0; ; tick++ {
		if ready == nil || ready() || tick%10 == 0 {
			status, body, err := p.get(ctx, host)
			if err == nil && status == http.StatusOK && body == pod {
				return time.Now(), nil
			}
			if ctx.Err() != nil {
				return time.Time{}, fmt.Errorf("waiting for %s to be served by %s (last: %d %q %v): %w", host, pod, status, body, err, ctx.Err())
			}
		}

		select {
		case <-ctx.Done():
		case <-ticker.C:
		}
	}
}

// checkAllRoutable sends one request for each workspace and returns an
// error naming the first one that its pod did not serve.
func (p *prober) checkAllRoutable(ctx context.Context, workspaces []*workspace) error {
	var (
		mu     sync.Mutex
		failed []string
	)
	err := parallel(ctx, len(workspaces), func(ctx context.Context, i int) error {
		ws := workspaces[i]
		status, body, err := p.get(ctx, host(ws.name))
		if err != nil || status != http.StatusOK || body != ws.pod {
			mu.Lock()
			failed = append(failed, fmt.Sprintf("%s: %d %q %v", host(ws.name), status, body, err))
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d workspaces not routable, first: %s", len(failed), len(workspaces), failed[0])
	}

	return nil
}

// reloadProbe makes Caddy reload with one bare admin API change: it sets
// the body of the probe route, which no benchmark requests, and returns
// how long Caddy took to respond.
func reloadProbe(ctx context.Context, caddy *testbed.Caddy, seq int) (time.Duration, error) {
	// The router writes only the routes array and not while the benchmark
	// waits for it to be idle, so the /id/ path cannot race with its writes.
	body := fmt.Appendf(nil, "%q", fmt.Sprintf("probe-%d", seq))

	start := time.Now()
	status, _, resp, err := caddy.Admin(ctx, http.MethodPatch, "/id/"+probeRouteID+"/handle/0/body", body)
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("changing the probe route: %w", err)
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("changing the probe route: status %d: %s", status, resp)
	}

	return elapsed, nil
}

// reloadProbeArray makes Caddy reload as the router does: it reads the
// whole routes array, changes the probe route's body in it and writes the
// array back with one PATCH. It returns how long the PATCH took.
func reloadProbeArray(ctx context.Context, caddy *testbed.Caddy, seq int) (time.Duration, error) {
	const path = "/config/apps/http/servers/srv0/routes"

	status, _, body, err := caddy.Admin(ctx, http.MethodGet, path, nil)
	if err != nil || status != http.StatusOK {
		return 0, fmt.Errorf("reading the routes array: status %d: %w", status, err)
	}
	var routes []map[string]any
	if err := json.Unmarshal(body, &routes); err != nil {
		return 0, fmt.Errorf("decoding the routes array: %w", err)
	}
	for _, route := range routes {
		if route["@id"] == probeRouteID {
			route["handle"] = []any{map[string]any{"handler": "static_response", "body": fmt.Sprintf("probe-array-%d", seq)}}
		}
	}
	array, err := json.Marshal(routes)
	if err != nil {
		return 0, err
	}

	start := time.Now()
	status, _, resp, err := caddy.Admin(ctx, http.MethodPatch, path, array)
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("writing the routes array: %w", err)
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("writing the routes array: status %d: %s", status, resp)
	}

	return elapsed, nil
}

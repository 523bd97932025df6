package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
)

// NodeName is the fake Node that the kubelet stand-in binds pods to.
const NodeName = "testbed-node"

// HoldTerminationLabel, set to "true" on a pod, holds that pod's
// termination as KubeletOptions.HoldTermination does for all pods.
const HoldTerminationLabel = "testbed.caddy-k8s-router/hold-termination"

// ManualReady, returned by KubeletOptions.ReadyDelay, keeps a pod not Ready
// until Kubelet.SetReady marks it.
const ManualReady time.Duration = -1

// KubeletOptions configures StartKubelet.
type KubeletOptions struct {
	// Namespace limits the stand-in to one namespace; empty means all.
	Namespace string

	// ReadyDelay returns how long after its backend starts a pod becomes
	// Ready, or ManualReady. Nil means at once.
	ReadyDelay func(*corev1.Pod) time.Duration

	// HoldTermination keeps a deleted pod serving and unchanged until
	// FinishDeletion is called for it, so that tests can look at a pod that
	// is terminating. Otherwise deletion is finished at once.
	HoldTermination bool

	// Workers is the number of pods handled in parallel; default 4.
	Workers int

	// Logger receives the stand-in's log; nil discards it.
	Logger *slog.Logger
}

// Kubelet replaces the kubelets of a cluster in tests. It binds pending pods to
// NodeName, gives each pod its own 127.x.y.z address with a Backend on each
// declared container port, and writes a Running status with podIP, podIPs
// and the Ready condition. When a pod is deleted it waits out the pod's
// preStop sleep, if any, stops the backends gracefully, marks the pod not
// Ready and deletes it with grace period 0, as a kubelet confirms a graceful
// deletion.
type Kubelet struct {
	client kubernetes.Interface
	opts   KubeletOptions
	log    *slog.Logger
	pool   *addressPool

	factory informers.SharedInformerFactory
	lister  corelisters.PodLister
	queue   workqueue.TypedRateLimitingInterface[string]
	cancel  context.CancelFunc
	done    sync.WaitGroup

	mu   sync.Mutex
	pods map[string]*fakePod
}

// fakePod is the stand-in's state of one running pod.
type fakePod struct {
	uid       types.UID
	ip        string
	backends  []*Backend
	readyAt   time.Time
	manual    bool
	ready     bool // for manual pods: set by SetReady
	releasing bool // FinishDeletion was called
}

// StartKubelet creates the fake Node and starts handling pods. Stop it with
// Stop.
func StartKubelet(ctx context.Context, client kubernetes.Interface, opts KubeletOptions) (*Kubelet, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	if err := createNode(ctx, client); err != nil {
		return nil, err
	}

	k := &Kubelet{
		client: client,
		opts:   opts,
		log:    logger,
		pool:   newAddressPool(),
		pods:   map[string]*fakePod{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](10*time.Millisecond, 2*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "testbed-kubelet"}),
	}

	k.factory = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(opts.Namespace))
	informer := k.factory.Core().V1().Pods()
	k.lister = informer.Lister()
	_, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    k.enqueue,
		UpdateFunc: func(_, obj any) { k.enqueue(obj) },
		DeleteFunc: k.enqueue,
	})
	if err != nil {
		return nil, fmt.Errorf("adding pod handler: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	k.factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		k.Stop()
		return nil, errors.New("kubelet stand-in: pod cache did not sync")
	}

	for range opts.Workers {
		k.done.Add(1)
		go func() {
			defer k.done.Done()
			for k.processNext(runCtx) {
			}
		}()
	}

	return k, nil
}

// createNode creates NodeName with a Ready condition, unless it exists.
func createNode(ctx context.Context, client kubernetes.Interface) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: NodeName},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		},
	}
	_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", NodeName, err)
	}

	return nil
}

func (k *Kubelet) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		k.queue.Add(key)
	}
}

func (k *Kubelet) processNext(ctx context.Context) bool {
	key, shutdown := k.queue.Get()
	if shutdown {
		return false
	}
	defer k.queue.Done(key)

	if err := k.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			k.log.Debug("kubelet stand-in sync failed", "pod", key, "err", err)
			k.queue.AddRateLimited(key)
		}
		return true
	}
	k.queue.Forget(key)

	return true
}

// sync brings one pod one step closer to what a kubelet would make of it.
func (k *Kubelet) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}

	pod, err := k.lister.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		k.release(key)
		return nil
	}
	if err != nil {
		return err
	}

	// a new pod of the same name replaces the old one
	k.mu.Lock()
	fp := k.pods[key]
	k.mu.Unlock()
	if fp != nil && fp.uid != pod.UID {
		k.release(key)
		fp = nil
	}

	switch {
	case pod.Spec.NodeName == "":
		return k.bind(ctx, pod)
	case pod.Spec.NodeName != NodeName:
		return nil
	case pod.DeletionTimestamp != nil:
		return k.terminate(ctx, key, pod, fp)
	case fp == nil:
		if _, err := k.run(key, pod); err != nil {
			return err
		}
		k.queue.Add(key)
		return nil
	default:
		return k.writeStatus(ctx, key, pod, fp)
	}
}

// bind assigns the pod to NodeName through the binding subresource, as a
// scheduler does.
func (k *Kubelet) bind(ctx context.Context, pod *corev1.Pod) error {
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: NodeName},
	}
	err := k.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}

	return err
}

// run gives the pod an address and starts a backend on each container port.
func (k *Kubelet) run(key string, pod *corev1.Pod) (*fakePod, error) {
	var ports []int
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			ports = append(ports, int(p.ContainerPort))
		}
	}

	fp := &fakePod{uid: pod.UID}
	if len(ports) == 0 {
		// no port to serve on: reserve an address with a throw-away port
		l, err := k.pool.listen(0)
		if err != nil {
			return nil, err
		}
		fp.ip, _, _ = net.SplitHostPort(l.Addr().String())
		fp.backends = append(fp.backends, serveBackend(l, pod.Name))
	}
	for i, port := range ports {
		var (
			l   net.Listener
			err error
		)
		if i == 0 && fp.ip == "" {
			l, err = k.pool.listen(port)
		} else {
			l, err = net.Listen("tcp", net.JoinHostPort(fp.ip, strconv.Itoa(port)))
		}
		if err != nil {
			fp.close()
			return nil, fmt.Errorf("starting backend of pod %s on port %d: %w", key, port, err)
		}
		if fp.ip == "" {
			fp.ip, _, _ = net.SplitHostPort(l.Addr().String())
		}
		fp.backends = append(fp.backends, serveBackend(l, pod.Name))
	}

	delay := time.Duration(0)
	if k.opts.ReadyDelay != nil {
		delay = k.opts.ReadyDelay(pod)
	}
	if delay == ManualReady {
		fp.manual = true
	} else {
		fp.readyAt = time.Now().Add(delay)
		if delay > 0 {
			k.queue.AddAfter(key, delay)
		}
	}

	k.mu.Lock()
	k.pods[key] = fp
	k.mu.Unlock()
	k.log.Debug("pod running", "pod", key, "ip", fp.ip)

	return fp, nil
}

// isReady reports whether the stand-in wants fp marked Ready now.
func (k *Kubelet) isReady(fp *fakePod) bool {
	k.mu.Lock()
	defer k.mu.Unlock()

	if fp.manual {
		return fp.ready
	}

	return !time.Now().Before(fp.readyAt)
}

// writeStatus writes the Running status with fp's address and readiness,
// unless the pod already has it.
func (k *Kubelet) writeStatus(ctx context.Context, key string, pod *corev1.Pod, fp *fakePod) error {
	ready := k.isReady(fp)
	k.mu.Lock()
	waiting := !ready && !fp.manual && !fp.readyAt.IsZero()
	k.mu.Unlock()
	if waiting {
		k.queue.AddAfter(key, time.Until(fp.readyAt))
	}
	if statusMatches(pod, fp.ip, ready) {
		return nil
	}

	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if current.UID != fp.uid || current.DeletionTimestamp != nil {
			return nil
		}

		setRunningStatus(current, fp.ip, ready)
		_, err = k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, current, metav1.UpdateOptions{})

		return err
	})
}

// terminate finishes a graceful deletion: stop the backends, mark the pod
// not Ready and delete it with grace period 0. With HoldTermination it waits
// for FinishDeletion.
func (k *Kubelet) terminate(ctx context.Context, key string, pod *corev1.Pod, fp *fakePod) error {
	if fp != nil && (k.opts.HoldTermination || pod.Labels[HoldTerminationLabel] == "true") {
		k.mu.Lock()
		releasing := fp.releasing
		k.mu.Unlock()
		if !releasing {
			return nil
		}
	}

	// a preStop sleep keeps the pod serving, as it does on a kubelet
	if wait := preStopSleep(pod); fp != nil && wait > 0 {
		end := pod.DeletionTimestamp.Add(wait)
		if remaining := time.Until(end); remaining > 0 {
			k.queue.AddAfter(key, remaining)
			return nil
		}
	}

	// then the container gets SIGTERM and finishes its open requests
	k.releaseGracefully(key)

	if podReady(pod) {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current, err := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil || current.UID != pod.UID {
				return err
			}
			setRunningStatus(current, podIP(current), false)
			_, err = k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, current, metav1.UpdateOptions{})
			return err
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}

	zero := int64(0)
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}

	return err
}

// release stops the pod's backends and drops its state.
func (k *Kubelet) release(key string) {
	k.mu.Lock()
	fp := k.pods[key]
	delete(k.pods, key)
	k.mu.Unlock()

	if fp != nil {
		fp.close()
	}
}

// releaseGracefully stops the pod's backends as a process does on SIGTERM:
// no new connections, open requests finish, for at most 5 seconds.
func (k *Kubelet) releaseGracefully(key string) {
	k.mu.Lock()
	fp := k.pods[key]
	delete(k.pods, key)
	k.mu.Unlock()

	if fp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range fp.backends {
		_ = b.Shutdown(ctx)
	}
}

// preStopSleep returns the sleep of the first container's preStop hook, or 0.
func preStopSleep(pod *corev1.Pod) time.Duration {
	for _, c := range pod.Spec.Containers {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			return time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}

	return 0
}

func (fp *fakePod) close() {
	for _, b := range fp.backends {
		_ = b.Close()
	}
}

// SetReady marks a pod Ready or not Ready. It works for every pod the
// stand-in runs; a pod with ManualReady stays as set until the next call.
func (k *Kubelet) SetReady(namespace, name string, ready bool) error {
	key := namespace + "/" + name

	k.mu.Lock()
	fp := k.pods[key]
	if fp != nil {
		fp.manual = true
		fp.ready = ready
	}
	k.mu.Unlock()

	if fp == nil {
		return fmt.Errorf("pod %s is not running on the kubelet stand-in", key)
	}
	k.queue.Add(key)

	return nil
}

// FinishDeletion lets a terminating pod held by HoldTermination finish its
// deletion.
func (k *Kubelet) FinishDeletion(namespace, name string) error {
	key := namespace + "/" + name

	k.mu.Lock()
	fp := k.pods[key]
	if fp != nil {
		fp.releasing = true
	}
	k.mu.Unlock()

	if fp == nil {
		return fmt.Errorf("pod %s is not running on the kubelet stand-in", key)
	}
	k.queue.Add(key)

	return nil
}

// PodIP returns the address the stand-in gave a pod, or "" if it runs no
// such pod.
func (k *Kubelet) PodIP(namespace, name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()

	if fp := k.pods[namespace+"/"+name]; fp != nil {
		return fp.ip
	}

	return ""
}

// Stop stops handling pods and closes every backend. Pods stay in the API
// server as they are.
func (k *Kubelet) Stop() {
	k.cancel()
	k.queue.ShutDown()
	k.done.Wait()
	k.factory.Shutdown()

	k.mu.Lock()
	pods := k.pods
	k.pods = map[string]*fakePod{}
	k.mu.Unlock()
	for _, fp := range pods {
		fp.close()
	}
}

// setRunningStatus fills in the status a kubelet writes for a running pod.
func setRunningStatus(pod *corev1.Pod, ip string, ready bool) {
	now := metav1.Now()
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}

	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = "127.0.0.1"
	pod.Status.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	if pod.Status.StartTime == nil {
		pod.Status.StartTime = &now
	}

	conditions := []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: readyStatus},
		{Type: corev1.PodReady, Status: readyStatus},
	}
	for i := range conditions {
		conditions[i].LastTransitionTime = now
		for _, old := range pod.Status.Conditions {
			if old.Type == conditions[i].Type && old.Status == conditions[i].Status {
				conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	pod.Status.Conditions = conditions

	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:    c.Name,
			Image:   c.Image,
			Ready:   ready,
			Started: &ready,
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *pod.Status.StartTime}},
		})
	}
}

// statusMatches reports whether pod already shows ip and the readiness.
func statusMatches(pod *corev1.Pod, ip string, ready bool) bool {
	return pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP == ip && podReady(pod) == ready
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}

	return false
}

func podIP(pod *corev1.Pod) string {
	return pod.Status.PodIP
}

package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// Structured log keys.
const (
	logKeyNamespace  = "namespace"
	logKeyDeployment = "deployment"
	logKeyRoute      = "route"
	logKeyHost       = "host"
	logKeyUpstreams  = "upstreams"
	logKeyErr        = "err"
	logKeyPod        = "pod"
	logKeyReason     = "reason"
	logKeyDetail     = "detail"
	logKeyRoutes     = "routes"
	logKeyFailures   = "failures"
	logKeyWinner     = "winner"
	logKeyType       = "type"
)

// RouteWriter is the controller's only access to Caddy. cmd/router fills it
// with the caddyapi client, and tests use a fake.
type RouteWriter interface {
	// SetRoutes makes the routes owned by the router equal routes, which
	// are sorted by ID. When they are equal already it writes nothing. It
	// returns the ids it added, updated and removed.
	SetRoutes(ctx context.Context, routes []Route) (Change, error)
}

// RouteReader is implemented by a RouteWriter that can also list the routes
// the router owns in Caddy. At start-up the controller reads them once, so
// that a Deployment whose port annotation turned invalid while the router
// was down keeps routing at the port Caddy already has.
type RouteReader interface {
	// Routes returns the routes the router owns in Caddy.
	Routes(ctx context.Context) ([]Route, error)
}

// RouteProber is implemented by a RouteWriter that can read, cheaply, the id
// of the first route where its owned routes start. The controller then
// checks every ProbeInterval that Caddy still has its routes, and rewrites
// them at once when it does not, instead of waiting for the next full drift
// check.
type RouteProber interface {
	// FirstRouteID returns the id of the first route of the managed array,
	// or "" when there is none.
	FirstRouteID(ctx context.Context) (string, error)
}

// Change is the outcome of one SetRoutes call.
type Change struct {
	// Written reports whether Caddy's config was written.
	Written bool
	// Added, Updated and Removed are route ids.
	Added, Updated, Removed []string
}

// Options configures a Controller. Namer is required; zero values of the
// other fields take the defaults given.
type Options struct {
	// Namespaces are watched; a list holding only "" means all namespaces.
	// Required.
	Namespaces []string
	// Namer builds each Deployment's host. Required.
	Namer *routing.Namer
	// RouteIDPrefix starts the @id of every owned route; default
	// routing.DefaultRouteIDPrefix.
	RouteIDPrefix string
	// DefaultPort is the upstream port of Deployments without a port
	// annotation; default routing.DefaultPort.
	DefaultPort int32
	// IPFamily picks the address of dual-stack pods: IPv4, IPv6, or "" for
	// the pod's primary IP.
	IPFamily corev1.IPFamily
	// Workers is the number of Deployments synced in parallel; default 4.
	Workers int
	// ResyncPeriod is the informers' resync period; default 10 minutes.
	ResyncPeriod time.Duration
	// DriftInterval is how often Caddy's owned routes are read back and
	// rewritten if they differ; default 10 seconds.
	DriftInterval time.Duration
	// ProbeInterval is how often a RouteProber writer is asked for the first
	// route id, so that lost routes are noticed between drift checks.
	// Default 1 second; a negative value turns the probe off.
	ProbeInterval time.Duration
	// WritePerChange turns coalescing off: every changed Deployment is
	// written at once in its own call. It exists to measure what coalescing
	// saves, and is slower in every other respect.
	WritePerChange bool
	// Logger receives the controller's log; default slog.Default().
	Logger *slog.Logger
}

// Controller routes every Ready Deployment in the watched namespaces
// through Caddy. It keeps one claim per Deployment, computed by workers from
// the informer caches, and a single writer that makes Caddy's owned routes
// equal the resolved claims. Changes that arrive while a write is in flight
// are combined into the next write.
type Controller struct {
	client kubernetes.Interface
	writer RouteWriter
	opts   Options
	log    *slog.Logger

	factories          []informers.SharedInformerFactory
	deploymentsListers map[string]appslisters.DeploymentLister
	podIndexers        map[string]cache.Indexer
	cachesSynced       []cache.InformerSynced
	workqueue          workqueue.TypedRateLimitingInterface[string]
	broadcaster        record.EventBroadcaster
	recorder           record.EventRecorder

	// mu guards the fields below it.
	mu sync.Mutex
	// claims holds the current claim of every Deployment that has a host.
	claims map[string]claim
	// problems holds the last problem reported per Deployment key, so that
	// each one is logged and recorded once.
	problems map[string]string
	// readySince holds, per Deployment key, when a pod of it was first seen
	// Ready since the last write.
	readySince map[string]time.Time
	// losers holds the Deployments refused a host, with the winner's key.
	losers map[string]string
	// hostHolders maps each host to the Deployment key that won it in the
	// last resolution, seeded from Caddy's routes at start-up.
	hostHolders map[string]string
	// nextSeen numbers claims in the order the router first stores them.
	nextSeen uint64
	// routedPorts holds, per Deployment key, the upstream port of its route
	// in Caddy at start-up, for Deployments whose port annotation is invalid.
	routedPorts map[string]int32

	initialized atomic.Bool
	lastSyncErr atomic.Pointer[error]
	apiErr      atomic.Pointer[error]
	// firstRouteID is the first id of the routes last synced, "" for none.
	firstRouteID        atomic.Pointer[string]
	consecutiveFailures atomic.Int64
	kick                chan struct{}
	// writeMu makes sure at most one SetRoutes call is in flight.
	writeMu sync.Mutex
}

// New builds a Controller over the given namespaces. Start it with Run.
func New(client kubernetes.Interface, writer RouteWriter, opts Options) (*Controller, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}

	c := &Controller{
		client:             client,
		writer:             writer,
		opts:               opts,
		log:                opts.Logger,
		deploymentsListers: map[string]appslisters.DeploymentLister{},
		podIndexers:        map[string]cache.Indexer{},
		workqueue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployments"}),
		claims:      map[string]claim{},
		problems:    map[string]string{},
		readySince:  map[string]time.Time{},
		losers:      map[string]string{},
		routedPorts: map[string]int32{},
		hostHolders: map[string]string{},
		kick:        make(chan struct{}, 1),
	}

	for _, namespace := range opts.Namespaces {
		if err := c.addInformers(namespace); err != nil {
			return nil, err
		}
	}

	c.broadcaster = record.NewBroadcaster()
	c.recorder = c.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: eventSource})

	return c, nil
}

func (o *Options) defaults() error {
	if len(o.Namespaces) == 0 {
		return errors.New("no namespace to watch: set at least one namespace, or \"\" for all")
	}
	seen := map[string]bool{}
	for _, ns := range o.Namespaces {
		if ns != "" && len(validation.IsDNS1123Label(ns)) > 0 {
			return fmt.Errorf("invalid namespace %q: must be a DNS-1123 label", ns)
		}
		if seen[ns] {
			return fmt.Errorf("namespace %q is listed twice", ns)
		}
		seen[ns] = true
	}
	if seen[""] && len(o.Namespaces) > 1 {
		return errors.New(`namespace "" (all namespaces) cannot be combined with others`)
	}
	if o.Namer == nil {
		return errors.New("no Namer: the controller needs one to build hosts")
	}
	if o.RouteIDPrefix == "" {
		o.RouteIDPrefix = routing.DefaultRouteIDPrefix
	}
	if err := routing.ValidateRouteIDPrefix(o.RouteIDPrefix); err != nil {
		return err
	}
	if o.DefaultPort == 0 {
		o.DefaultPort = routing.DefaultPort
	}
	if o.DefaultPort < 1 || o.DefaultPort > 65535 {
		return fmt.Errorf("invalid default port %d: must be from 1 to 65535", o.DefaultPort)
	}
	switch o.IPFamily {
	case "", corev1.IPv4Protocol, corev1.IPv6Protocol:
	default:
		return fmt.Errorf("invalid IP family %q: must be IPv4, IPv6 or empty for the pod's primary IP", o.IPFamily)
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.ResyncPeriod <= 0 {
		o.ResyncPeriod = 10 * time.Minute
	}
	if o.DriftInterval <= 0 {
		o.DriftInterval = 10 * time.Second
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}

	return nil
}

// addInformers sets up the Deployment and Pod informers of one namespace.
func (c *Controller) addInformers(namespace string) error {
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, c.opts.ResyncPeriod,
		informers.WithNamespace(namespace), informers.WithTransform(trimObject))

	// the informers, with list-watches that retry while the API server is
	// unreachable
	factory.InformerFor(&appsv1.Deployment{}, func(client kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		api := client.AppsV1().Deployments(namespace)
		lw := cache.ToListWatcherWithWatchListSemantics(retryingListWatch(api.List, api.Watch, c.noteAPIError), client)
		return cache.NewSharedIndexInformer(lw, &appsv1.Deployment{}, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	})
	factory.InformerFor(&corev1.Pod{}, func(client kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		api := client.CoreV1().Pods(namespace)
		lw := cache.ToListWatcherWithWatchListSemantics(retryingListWatch(api.List, api.Watch, c.noteAPIError), client)
		return cache.NewSharedIndexInformer(lw, &corev1.Pod{}, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	})

	deployments := factory.Apps().V1().Deployments()
	if err := deployments.Informer().SetWatchErrorHandlerWithContext(c.onWatchError); err != nil {
		return fmt.Errorf("setting the deployment watch error handler: %w", err)
	}
	_, err := deployments.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onDeployment,
		UpdateFunc: c.onDeploymentUpdate,
		DeleteFunc: c.onDeployment,
	})
	if err != nil {
		return fmt.Errorf("adding deployment handler: %w", err)
	}

	pods := factory.Core().V1().Pods()
	if err := pods.Informer().SetWatchErrorHandlerWithContext(c.onWatchError); err != nil {
		return fmt.Errorf("setting the pod watch error handler: %w", err)
	}
	if err := pods.Informer().AddIndexers(cache.Indexers{byDeploymentIndex: indexByDeployment}); err != nil {
		return fmt.Errorf("adding pod indexer: %w", err)
	}
	_, err = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onPodAdd,
		UpdateFunc: c.onPodUpdate,
		DeleteFunc: c.onPodDelete,
	})
	if err != nil {
		return fmt.Errorf("adding pod handler: %w", err)
	}

	c.factories = append(c.factories, factory)
	c.deploymentsListers[namespace] = deployments.Lister()
	c.podIndexers[namespace] = pods.Informer().GetIndexer()
	c.cachesSynced = append(c.cachesSynced, deployments.Informer().HasSynced, pods.Informer().HasSynced)

	return nil
}

// Run starts the informers, waits for their caches, computes the claim of
// every Deployment, and then runs the workers, the writer and the drift
// check until ctx is done. It never deletes routes on its way out: Caddy
// keeps serving what was written last. It returns an error only if the
// caches do not sync.
func (c *Controller) Run(ctx context.Context) error {
	defer c.workqueue.ShutDown()

	c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer c.broadcaster.Shutdown()

	// start the informers and wait for their caches
	for _, factory := range c.factories {
		factory.Start(ctx.Done())
	}
	defer func() {
		for _, factory := range c.factories {
			factory.Shutdown()
		}
	}()

	c.log.Info("waiting for informer caches to sync", "namespaces", c.opts.Namespaces)
	if !cache.WaitForCacheSync(ctx.Done(), c.cachesSynced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("informer caches did not sync")
	}

	// compute every claim before the first write, so that the first write
	// never removes the route of a Deployment that was not looked at yet
	c.readRoutedPorts(ctx)
	c.initialClaims()
	c.initialized.Store(true)
	c.log.Info("caches synced", "deployments", len(c.claims))

	// start the workers and the writer
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			for c.processNextWorkItem(ctx) {
			}
		})
	}
	wg.Go(func() { c.runWriter(ctx) })
	c.requestWrite()

	<-ctx.Done()
	c.log.Info("stopping controller")
	c.workqueue.ShutDown()
	wg.Wait()

	return nil
}

// noteAPIError records err as the API server's state for APIServerError, or
// clears it when err is nil.
func (c *Controller) noteAPIError(err error) {
	if err == nil {
		if c.apiErr.Load() != nil {
			c.apiErr.Store(nil)
		}
		return
	}

	wrapped := fmt.Errorf("API server unreachable: %w", err)
	c.apiErr.Store(&wrapped)
}

// onWatchError records a list or watch failure, such as a Forbidden response,
// for APIServerError. client-go logs it too.
func (c *Controller) onWatchError(_ context.Context, _ *cache.Reflector, err error) {
	if errors.Is(err, io.EOF) {
		// a watch closed by the server; the reflector reconnects
		return
	}

	wrapped := fmt.Errorf("listing or watching: %w", err)
	c.apiErr.Store(&wrapped)
}

// APIServerError returns why the informers cannot list or watch, or nil when
// the last call succeeded.
func (c *Controller) APIServerError() error {
	if p := c.apiErr.Load(); p != nil {
		return *p
	}

	return nil
}

// HasSynced reports whether the caches have synced and every Deployment's
// claim has been computed once.
func (c *Controller) HasSynced() bool {
	return c.initialized.Load()
}

// LastSyncError returns the error of the last route sync with Caddy, or nil
// if it succeeded or none has run yet.
func (c *Controller) LastSyncError() error {
	if p := c.lastSyncErr.Load(); p != nil {
		return *p
	}

	return nil
}

// readRoutedPorts records the host and the upstream port of every route the
// router owns in Caddy, if the writer can list them. A failure only loses that fallback,
// so it is logged and start-up goes on.
func (c *Controller) readRoutedPorts(ctx context.Context) {
	reader, ok := c.writer.(RouteReader)
	if !ok {
		return
	}

	readCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	routes, err := reader.Routes(readCtx)
	if err != nil {
		c.log.Warn("reading Caddy's routes at start-up failed; a Deployment with an invalid port annotation loses its route", logKeyErr, err)
		return
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range routes {
		namespace, name, ok := routing.ParseRouteID(c.opts.RouteIDPrefix, r.ID)
		if !ok {
			continue
		}
		c.hostHolders[r.Host] = namespace + "/" + name
		if len(r.Upstreams) == 0 {
			continue
		}
		_, portText, err := net.SplitHostPort(r.Upstreams[0])
		if err != nil {
			continue
		}
		if port, err := strconv.ParseInt(portText, 10, 32); err == nil {
			c.routedPorts[namespace+"/"+name] = int32(port)
		}
	}
}

// initialClaims computes the claim of every Deployment in the caches and
// queues each for a full sync (annotation backfill and events).
func (c *Controller) initialClaims() {
	for _, lister := range c.deploymentsListers {
		deployments, err := lister.List(labels.Everything())
		if err != nil {
			// A lister over the informer cache returns no error today.
			c.log.Error("listing deployments from the cache failed", logKeyErr, err)
			continue
		}
		for _, d := range deployments {
			key := d.Namespace + "/" + d.Name
			if res, err := c.computeRoute(d); err == nil {
				c.storeClaim(key, res.claim)
			}
			c.workqueue.Add(key)
		}
	}
}

func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, shutdown := c.workqueue.Get()
	if shutdown {
		return false
	}
	defer c.workqueue.Done(key)

	err := c.syncDeployment(ctx, key)
	if err == nil {
		c.workqueue.Forget(key)
		return true
	}

	reconcileTotal.WithLabelValues("error").Inc()
	c.log.Error("syncing deployment failed, will retry", logKeyDeployment, key, logKeyErr, err)
	c.workqueue.AddRateLimited(key)

	return true
}

// Event handlers. They only queue Deployment keys; the workers do the rest.

func (c *Controller) onDeployment(obj any) {
	obj = objectFromTombstone(obj)
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		c.log.Debug("ignoring a deployment event for an unexpected type", logKeyType, fmt.Sprintf("%T", obj))
		return
	}

	c.workqueue.Add(d.Namespace + "/" + d.Name)
}

func (c *Controller) onDeploymentUpdate(oldObj, newObj any) {
	oldD, ok1 := oldObj.(*appsv1.Deployment)
	newD, ok2 := newObj.(*appsv1.Deployment)
	if ok1 && ok2 && oldD.ResourceVersion == newD.ResourceVersion {
		return // periodic resync
	}

	c.onDeployment(newObj)
}

func (c *Controller) onPodAdd(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	// pods listed at start-up were Ready before the router saw them, so
	// they would skew the Ready-to-route latency
	if isPodReady(pod) && c.initialized.Load() {
		c.noteReady(pod)
	}

	c.enqueuePod(pod)
}

func (c *Controller) onPodUpdate(oldObj, newObj any) {
	oldPod, ok1 := oldObj.(*corev1.Pod)
	newPod, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 || oldPod.ResourceVersion == newPod.ResourceVersion {
		return // periodic resync
	}
	if !isPodReady(oldPod) && isPodReady(newPod) {
		c.noteReady(newPod)
	}

	c.enqueuePod(newPod)
}

func (c *Controller) onPodDelete(obj any) {
	pod, ok := objectFromTombstone(obj).(*corev1.Pod)
	if !ok {
		c.log.Debug("ignoring a pod delete event for an unexpected type", logKeyType, fmt.Sprintf("%T", objectFromTombstone(obj)))
		return
	}

	c.enqueuePod(pod)
}

func (c *Controller) enqueuePod(pod *corev1.Pod) {
	if key, ok := deploymentKeyOfPod(pod); ok {
		c.workqueue.Add(key)
	}
}

// noteReady records when a pod of a Deployment became Ready, for the
// Ready-to-route latency metric.
func (c *Controller) noteReady(pod *corev1.Pod) {
	key, ok := deploymentKeyOfPod(pod)
	if !ok {
		return
	}

	c.mu.Lock()
	defer c.mu.Unlock()

	if _, pending := c.readySince[key]; !pending {
		c.readySince[key] = time.Now()
	}
}

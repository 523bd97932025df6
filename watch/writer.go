package watch

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

const (
	// syncTimeout bounds one SetRoutes call, reload included.
	syncTimeout = 30 * time.Second
	// minRetryDelay and maxRetryDelay bound the delay between retries of a
	// failed sync. The maximum is short so that routes are rewritten soon
	// after Caddy's admin API is reachable again.
	minRetryDelay = 100 * time.Millisecond
	maxRetryDelay = time.Second
	// errorLogEvery is how many consecutive failed syncs are logged at
	// Debug between two logged at Error.
	errorLogEvery = 30
	// burstSpacing is how many times the duration of the last write the
	// writer waits after it before the next write, when changes arrived
	// while it was writing. Under a burst of changes Caddy then spends at
	// most a third of its time reloading, and each write carries more of
	// the burst. A change that arrives when the writer is idle is written
	// at once.
	burstSpacing = 2
)

// requestWrite requests a sync from the writer. It never blocks: a request made
// while another is pending is combined with it.
func (c *Controller) requestWrite() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// routesChanged is called by a worker after it changed a claim.
func (c *Controller) routesChanged(ctx context.Context) {
	if c.opts.WritePerChange && c.initialized.Load() {
		if err := c.syncRoutes(ctx); err == nil {
			return
		}
	}

	c.requestWrite()
}

// runWriter syncs the routes with Caddy on every request, every
// DriftInterval, and after a failure with a short backoff, until ctx is done.
// A sync reads Caddy's owned routes first and writes only when they differ,
// so the periodic one also repairs drift.
func (c *Controller) runWriter(ctx context.Context) {
	drift := time.NewTicker(c.opts.DriftInterval)
	defer drift.Stop()

	var probe <-chan time.Time
	prober, canProbe := c.writer.(RouteProber)
	if canProbe && c.opts.ProbeInterval > 0 {
		ticker := time.NewTicker(c.opts.ProbeInterval)
		defer ticker.Stop()
		probe = ticker.C
	}

	var (
		retry     <-chan time.Time
		notBefore time.Time
	)
	delay := minRetryDelay
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			if !waitUntil(ctx, notBefore) {
				return
			}
		case <-drift.C:
		case <-retry:
		case <-probe:
			if retry != nil || !c.routesLost(ctx, prober) {
				continue
			}
			c.log.Info("Caddy lost the owned routes, rewriting them")
		}

		retry = nil
		start := time.Now()
		written, err := c.syncRoutesReport(ctx)
		notBefore = time.Time{}
		if written && len(c.kick) > 0 {
			// a burst: changes arrived during the write
			notBefore = time.Now().Add(burstSpacing * time.Since(start))
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			retry = time.After(delay)
			delay = min(2*delay, maxRetryDelay)
			continue
		}
		delay = minRetryDelay
	}
}

// waitUntil waits until t, and reports false if ctx ended first.
func waitUntil(ctx context.Context, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return true
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// syncRoutes makes Caddy's owned routes equal the resolved claims, then
// reports what changed.
func (c *Controller) syncRoutes(ctx context.Context) error {
	_, err := c.syncRoutesReport(ctx)
	return err
}

// syncRoutesReport is syncRoutes that also reports whether it wrote.
func (c *Controller) syncRoutesReport(ctx context.Context) (bool, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	// snapshot the claims
	c.mu.Lock()
	claims := maps.Clone(c.claims)
	holders := maps.Clone(c.hostHolders)
	pendingReady := maps.Clone(c.readySince)
	c.mu.Unlock()

	routes, losers, winners := resolveClaims(claims, holders)
	c.reportConflicts(losers)
	c.mu.Lock()
	c.hostHolders = winners
	c.mu.Unlock()

	// write
	start := time.Now()
	writeCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	change, err := c.writer.SetRoutes(writeCtx, routes)
	cancel()
	routeWriteDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		routeWritesTotal.WithLabelValues("error").Inc()
		c.recordSyncError(err, len(routes))
		return false, err
	}
	if c.LastSyncError() != nil {
		c.log.Info("route sync with Caddy recovered", logKeyRoutes, len(routes))
	}
	c.lastSyncErr.Store(nil)
	c.consecutiveFailures.Store(0)
	first := ""
	if len(routes) > 0 {
		first = routes[0].ID
	}
	c.firstRouteID.Store(&first)
	managedRoutes.Set(float64(len(routes)))

	if !change.Written {
		routeWritesTotal.WithLabelValues("unchanged").Inc()
	} else {
		routeWritesTotal.WithLabelValues("written").Inc()
		c.reportChange(change, routes)
	}
	c.observeReadyLatency(pendingReady, routes)

	return change.Written, nil
}

// routesLost reports whether the prober shows that Caddy no longer starts its
// managed array with the first route last synced. A failed probe reports
// false: the next drift check or request finds and reports the failure.
func (c *Controller) routesLost(ctx context.Context, prober RouteProber) bool {
	want := c.firstRouteID.Load()
	if want == nil || *want == "" {
		return false
	}

	probeCtx, cancel := context.WithTimeout(ctx, c.opts.ProbeInterval)
	defer cancel()
	got, err := prober.FirstRouteID(probeCtx)
	if err != nil {
		c.log.Debug("probing Caddy's first route failed", logKeyErr, err)
		return false
	}

	return got != *want
}

// recordSyncError stores err for readiness and logs it, at Error for the
// first failure and every errorLogEvery-th after it.
func (c *Controller) recordSyncError(err error, routes int) {
	c.lastSyncErr.Store(&err)

	failures := c.consecutiveFailures.Add(1)
	if failures == 1 || failures%errorLogEvery == 0 {
		c.log.Error("syncing routes with Caddy failed, will retry", logKeyRoutes, routes, logKeyFailures, failures, logKeyErr, err)
		return
	}
	c.log.Debug("syncing routes with Caddy failed, will retry", logKeyRoutes, routes, logKeyFailures, failures, logKeyErr, err)
}

// reportChange logs every added, updated and removed route and records an
// Event on its Deployment, if the Deployment still exists.
func (c *Controller) reportChange(change Change, routes []Route) {
	byID := make(map[string]Route, len(routes))
	for _, r := range routes {
		byID[r.ID] = r
	}

	report := func(ids []string, message, reason string) {
		for _, id := range ids {
			route := byID[id]
			namespace, name, _ := routing.ParseRouteID(c.opts.RouteIDPrefix, id)
			c.log.Info(message, logKeyNamespace, namespace, logKeyDeployment, name, logKeyRoute, id,
				logKeyHost, route.Host, logKeyUpstreams, route.Upstreams)

			d := c.cachedDeployment(namespace, name)
			if d == nil {
				continue
			}
			if reason == ReasonRouteRemoved {
				c.recorder.Event(d, corev1.EventTypeNormal, reason, "route removed from Caddy: "+c.removalCause(d))
				continue
			}
			c.recorder.Eventf(d, corev1.EventTypeNormal, reason, "route %s -> %s", route.Host, strings.Join(route.Upstreams, ", "))
		}
	}
	report(change.Added, "route created", ReasonRouteCreated)
	report(change.Updated, "route updated", ReasonRouteUpdated)
	report(change.Removed, "route removed", ReasonRouteRemoved)
}

// removalCause returns why the route of d was removed while d exists: input
// the user must fix, a host conflict, or no Ready pod.
func (c *Controller) removalCause(d *appsv1.Deployment) string {
	key := d.Namespace + "/" + d.Name

	c.mu.Lock()
	winner, lost := c.losers[key]
	c.mu.Unlock()
	if lost {
		return "its host is routed to the older deployment " + winner
	}
	if _, err := desiredRoute(c.routeInputFor(d)); err != nil {
		return err.Error()
	}

	return "no pod is Ready"
}

// reportConflicts records a Warning Event on each Deployment newly refused a
// host because an older one has it.
func (c *Controller) reportConflicts(losers map[string]string) {
	// store a copy, because forget deletes from the stored map while this
	// loop reads losers
	c.mu.Lock()
	previous := c.losers
	c.losers = maps.Clone(losers)
	c.mu.Unlock()

	for key, winner := range losers {
		if previous[key] == winner {
			continue
		}

		namespace, name, _ := strings.Cut(key, "/")
		message := fmt.Sprintf("host is already routed to the older deployment %s; this deployment gets no route until that one is deleted or renamed", winner)
		c.log.Warn("host conflict", logKeyNamespace, namespace, logKeyDeployment, name, logKeyWinner, winner)
		if d := c.cachedDeployment(namespace, name); d != nil {
			c.recorder.Event(d, corev1.EventTypeWarning, ReasonHostConflict, message)
		}
	}
}

// observeReadyLatency records, for each Deployment that had a pod turn Ready
// before this sync and now has a route, the time since that pod turned Ready.
func (c *Controller) observeReadyLatency(pending map[string]time.Time, routes []Route) {
	if len(pending) == 0 {
		return
	}

	routed := make(map[string]bool, len(routes))
	for _, r := range routes {
		if namespace, name, ok := routing.ParseRouteID(c.opts.RouteIDPrefix, r.ID); ok {
			routed[namespace+"/"+name] = true
		}
	}

	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()

	for key, since := range pending {
		if !routed[key] {
			continue
		}
		readyToRouteSeconds.Observe(now.Sub(since).Seconds())
		if c.readySince[key].Equal(since) {
			delete(c.readySince, key)
		}
	}
}

// cachedDeployment returns the cached Deployment, or nil if it is gone.
func (c *Controller) cachedDeployment(namespace, name string) *appsv1.Deployment {
	lister := c.deploymentLister(namespace)
	if lister == nil {
		return nil
	}

	d, err := lister.Deployments(namespace).Get(name)
	if err != nil {
		return nil
	}

	return d
}

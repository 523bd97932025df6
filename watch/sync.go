package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// syncDeployment brings the claim of one Deployment up to date with the
// caches, backfills its route annotation, and requests a write when
// the claim changed. It returns an error only for transient failures, which
// are retried; input the user must fix is logged and recorded as an Event.
func (c *Controller) syncDeployment(ctx context.Context, key string) error {
	start := time.Now()
	defer func() { reconcileDuration.Observe(time.Since(start).Seconds()) }()

	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Error("invalid queue key", "key", key, logKeyErr, err)
		return nil
	}

	// get the Deployment
	d, err := c.deploymentLister(namespace).Deployments(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting deployment %s from the cache: %w", key, err)
	}

	// compute its route
	res, err := c.computeRoute(d)
	if err != nil {
		reconcileTotal.WithLabelValues("invalid").Inc()
		c.reportInvalid(d, err)
		if errors.Is(err, errInvalidName) {
			return c.backfillAnnotation(ctx, d, "")
		}
		return nil
	}
	reconcileTotal.WithLabelValues("success").Inc()
	c.reportWarning(d, res.warning)
	for pod, reason := range res.skipped {
		c.log.Debug("pod is not an upstream", logKeyNamespace, namespace, logKeyDeployment, name, logKeyPod, pod, logKeyReason, reason)
	}

	// store the claim, and write if it changed
	old, existed := c.storeClaim(key, res.claim)
	if !existed || !old.route.Equal(res.claim.route) || !old.created.Equal(res.claim.created) {
		c.routesChanged(ctx)
	}

	return c.backfillAnnotation(ctx, d, res.claim.route.Host)
}

// computeRoute computes the claim of d from the pod cache. When d's port
// annotation is invalid but d had a valid claim before, it keeps routing at
// that claim's port, so a bad edit does not take a working workspace
// offline. It still returns the error, for reporting.
func (c *Controller) computeRoute(d *appsv1.Deployment) (routeResult, error) {
	key := d.Namespace + "/" + d.Name
	in := c.routeInputFor(d)

	res, err := desiredRoute(in)
	if err == nil || !errors.Is(err, errInvalidPort) {
		return res, err
	}

	// the last valid port: from the current claim, or else from the route
	// Caddy had when the router started
	c.mu.Lock()
	old, existed := c.claims[key]
	lastPort := old.port
	if !existed {
		lastPort = c.routedPorts[key]
	}
	c.mu.Unlock()
	if lastPort == 0 {
		return res, err
	}

	// keep the last valid port
	withOldPort := d.DeepCopy()
	withOldPort.Annotations[routing.AnnotationPort] = strconv.Itoa(int(lastPort))
	in.deployment = withOldPort
	keptRes, keptErr := desiredRoute(in)
	if keptErr != nil {
		return res, err
	}

	c.storeClaim(key, keptRes.claim)
	if !existed || !old.route.Equal(keptRes.claim.route) {
		c.requestWrite()
	}

	return res, err
}

// routeInputFor returns the input of desiredRoute for d, with d's pods from
// the cache.
func (c *Controller) routeInputFor(d *appsv1.Deployment) routeInput {
	return routeInput{
		deployment:  d,
		pods:        c.podsOf(d.Namespace, d.Namespace+"/"+d.Name),
		namer:       c.opts.Namer,
		idPrefix:    c.opts.RouteIDPrefix,
		defaultPort: c.opts.DefaultPort,
		ipFamily:    c.opts.IPFamily,
	}
}

// storeClaim stores the claim of key, keeping the order in which the router
// first saw it, and returns the claim it replaced.
func (c *Controller) storeClaim(key string, cl claim) (old claim, existed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()

	old, existed = c.claims[key]
	if existed {
		cl.seen = old.seen
	} else {
		c.nextSeen++
		cl.seen = c.nextSeen
	}
	c.claims[key] = cl

	return old, existed
}

// podsOf returns the cached pods owned by the Deployment key.
func (c *Controller) podsOf(namespace, key string) []*corev1.Pod {
	indexer := c.podIndexers[namespace]
	if indexer == nil {
		indexer = c.podIndexers[""]
	}

	objs, err := indexer.ByIndex(byDeploymentIndex, key)
	if err != nil {
		c.log.Error("reading the pod index failed", logKeyDeployment, key, logKeyErr, err)
		return nil
	}

	pods := make([]*corev1.Pod, 0, len(objs))
	for _, obj := range objs {
		if pod, ok := obj.(*corev1.Pod); ok {
			pods = append(pods, pod)
		}
	}

	return pods
}

func (c *Controller) deploymentLister(namespace string) appslisters.DeploymentLister {
	if lister, ok := c.deploymentsListers[namespace]; ok {
		return lister
	}

	return c.deploymentsListers[""]
}

// forget drops the claim of a deleted Deployment and requests a write.
func (c *Controller) forget(key string) {
	c.mu.Lock()
	_, existed := c.claims[key]
	delete(c.claims, key)
	delete(c.problems, key)
	delete(c.readySince, key)
	delete(c.losers, key)
	delete(c.routedPorts, key)
	c.mu.Unlock()

	if existed {
		c.log.Info("deployment deleted", logKeyDeployment, key)
		c.requestWrite()
	}
}

// reportInvalid logs and records input the user must fix, once per distinct
// message.
func (c *Controller) reportInvalid(d *appsv1.Deployment, err error) {
	reason := ReasonInvalidPort
	if errors.Is(err, errInvalidName) {
		reason = ReasonInvalidName
	}

	message := err.Error()
	c.mu.Lock()
	if claim, ok := c.claims[d.Namespace+"/"+d.Name]; ok && reason == ReasonInvalidPort {
		message += fmt.Sprintf("; keeping the last valid port %d until it is fixed", claim.port)
	} else {
		message += "; no route is created until it is fixed"
	}
	c.mu.Unlock()

	if !c.newProblem(d, message) {
		return
	}
	c.log.Warn("deployment gets no new route", logKeyNamespace, d.Namespace, logKeyDeployment, d.Name, logKeyReason, reason, logKeyErr, message)
	c.recorder.Event(d, corev1.EventTypeWarning, reason, message)
}

// reportWarning logs a caveat of a computed route, once per distinct
// message.
func (c *Controller) reportWarning(d *appsv1.Deployment, warning string) {
	if warning == "" {
		c.newProblem(d, "")
		return
	}
	if c.newProblem(d, warning) {
		c.log.Warn("route uses a fallback", logKeyNamespace, d.Namespace, logKeyDeployment, d.Name, logKeyDetail, warning)
	}
}

// newProblem stores message as the current problem of d and reports whether
// it differs from the one stored before.
func (c *Controller) newProblem(d *appsv1.Deployment, message string) bool {
	key := d.Namespace + "/" + d.Name

	c.mu.Lock()
	defer c.mu.Unlock()

	if c.problems[key] == message {
		return false
	}
	if message == "" {
		delete(c.problems, key)
	} else {
		c.problems[key] = message
	}

	return true
}

// backfillAnnotation sets the route annotation to host with a merge patch of
// that one key, or removes it when host is empty, unless it already has that
// value. It carries no resourceVersion precondition: the router owns the key,
// so the patch cannot undo anyone else's change.
func (c *Controller) backfillAnnotation(ctx context.Context, d *appsv1.Deployment, host string) error {
	current, has := d.Annotations[routing.AnnotationRouteURL]
	if (host == "" && !has) || (host != "" && current == host) {
		return nil
	}

	var value any
	if host != "" {
		value = host
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{routing.AnnotationRouteURL: value}},
	})
	if err != nil {
		return err
	}

	_, err = c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: FieldManager})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("patching annotation %s of deployment %s/%s: %w", routing.AnnotationRouteURL, d.Namespace, d.Name, err)
	}
	c.log.Info("route annotation backfilled", logKeyNamespace, d.Namespace, logKeyDeployment, d.Name, logKeyHost, host)

	return nil
}

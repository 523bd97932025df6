package watch

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

const (
	// testNamespace is the namespace of every test object.
	testNamespace = "ns"
	// testBaseDomain is the base domain of every test Namer.
	testBaseDomain = "example.test"
	// testHash is the pod-template-hash of every test ReplicaSet.
	testHash = "5d8f7c9b6"
	// testPortName and testPortNumber are the container port that every
	// test pod template declares.
	testPortName   = "ide"
	testPortNumber = 3000
)

// newTestNamer returns a Namer that gives Deployment d the host
// d.example.test.
func newTestNamer(tb testing.TB) *routing.Namer {
	tb.Helper()

	namer, err := routing.NewNamer(testBaseDomain, routing.DefaultHostTemplate)
	if err != nil {
		tb.Fatal(err)
	}

	return namer
}

// testLogger returns a logger that writes to the test log at debug level.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter writes each log line to the test log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newDeployment returns a Deployment in testNamespace that selects the pods
// labeled app=name and declares the container port testPortName. A nil
// annotations map leaves the Deployment without annotations.
func newDeployment(name string, annotations map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}

	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   testNamespace,
			UID:         types.UID("uid-deployment-" + name),
			Annotations: annotations,
		},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "workspace",
					Image: "registry.example.test/workspace:1",
					Ports: []corev1.ContainerPort{{Name: testPortName, ContainerPort: testPortNumber, Protocol: corev1.ProtocolTCP}},
				}}},
			},
		},
	}
}

// portAnnotation returns the annotations of a Deployment whose port
// annotation is value.
func portAnnotation(value string) map[string]string {
	return map[string]string{routing.AnnotationPort: value}
}

// newPod returns a Running, Ready pod of the Deployment named deployment,
// controlled by its ReplicaSet <deployment>-<testHash> as the Deployment
// controller would create it. ips are its pod IPs, the first one primary.
func newPod(deployment, name string, ips ...string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: testNamespace,
			UID:       types.UID("uid-pod-" + name),
			Labels: map[string]string{
				"app":                                  deployment,
				appsv1.DefaultDeploymentUniqueLabelKey: testHash,
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1",
				Kind:       "ReplicaSet",
				Name:       deployment + "-" + testHash,
				UID:        types.UID("uid-rs-" + deployment),
				Controller: new(true),
			}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}

	for _, ip := range ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		pod.Status.PodIP = ips[0]
	}

	return pod
}

// withPod returns pod after applying change to it.
func withPod(pod *corev1.Pod, change func(*corev1.Pod)) *corev1.Pod {
	change(pod)
	return pod
}

// setReady sets the pod's Ready condition to status.
func setReady(pod *corev1.Pod, status corev1.ConditionStatus) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			pod.Status.Conditions[i].Status = status
		}
	}
}

// testRoute returns the route the controller builds for the Deployment
// name in testNamespace with the given upstreams.
func testRoute(name string, upstreams ...string) Route {
	return Route{
		ID:        routing.RouteID(routing.DefaultRouteIDPrefix, testNamespace, name),
		Host:      name + "." + testBaseDomain,
		Upstreams: upstreams,
	}
}

// fakeWriter is a RouteWriter that replaces Caddy in tests. It records the
// routes of every call, keeps the routes of the last successful call as
// Caddy's current routes, and can be made to fail or to wait.
type fakeWriter struct {
	// mu guards the fields below it.
	mu sync.Mutex
	// calls contains the routes of every SetRoutes call, failed ones too.
	calls [][]Route
	// failures is how many calls returned an error.
	failures int
	// current contains the routes of the last successful call. A test may
	// set it before the controller starts, as the routes Caddy already has.
	current []Route
	// succeeded reports whether any call succeeded.
	succeeded bool
	// differing counts the successful calls whose routes differ from
	// current at the time of the call.
	differing int
	// err, if set, is returned by every call and changes nothing.
	err error
	// hold, when not nil, makes each call wait until it is closed.
	hold chan struct{}
}

// SetRoutes records routes and, unless the writer fails, makes them the
// current routes. It returns the ids added, updated and removed against
// the current routes, and Written only when something changed, as the
// RouteWriter contract requires.
func (w *fakeWriter) SetRoutes(ctx context.Context, routes []Route) (Change, error) {
	w.mu.Lock()
	hold := w.hold
	w.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return Change{}, ctx.Err()
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()

	routes = cloneRoutes(routes)
	w.calls = append(w.calls, routes)
	if w.err != nil {
		w.failures++
		return Change{}, w.err
	}

	change := diffRoutes(w.current, routes)
	change.Written = len(change.Added)+len(change.Updated)+len(change.Removed) > 0
	if change.Written {
		w.differing++
	}
	w.current = routes
	w.succeeded = true

	return change, nil
}

// pause makes every following call wait until release is called.
func (w *fakeWriter) pause() (release func()) {
	w.mu.Lock()
	defer w.mu.Unlock()

	hold := make(chan struct{})
	w.hold = hold

	return sync.OnceFunc(func() { close(hold) })
}

// setErr makes every following call fail with err, or succeed if err is
// nil.
func (w *fakeWriter) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()

	w.err = err
}

// currentRoutes returns the routes of the last successful call, and false
// if no call succeeded yet.
func (w *fakeWriter) currentRoutes() ([]Route, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()

	return cloneRoutes(w.current), w.succeeded
}

// recordedCalls returns the routes of every call so far, in order.
func (w *fakeWriter) recordedCalls() [][]Route {
	w.mu.Lock()
	defer w.mu.Unlock()

	calls := make([][]Route, len(w.calls))
	for i, routes := range w.calls {
		calls[i] = cloneRoutes(routes)
	}

	return calls
}

// counts returns the number of calls, of failed calls and of successful
// calls that changed the routes.
func (w *fakeWriter) counts() (calls, failures, differing int) {
	w.mu.Lock()
	defer w.mu.Unlock()

	return len(w.calls), w.failures, w.differing
}

// diffRoutes returns the ids of the routes in next that are not in prev
// (Added), that are in both but differ (Updated), and that are only in
// prev (Removed).
func diffRoutes(prev, next []Route) Change {
	before := make(map[string]Route, len(prev))
	for _, r := range prev {
		before[r.ID] = r
	}

	var change Change
	for _, r := range next {
		old, ok := before[r.ID]
		switch {
		case !ok:
			change.Added = append(change.Added, r.ID)
		case !old.Equal(r):
			change.Updated = append(change.Updated, r.ID)
		}
		delete(before, r.ID)
	}
	for id := range before {
		change.Removed = append(change.Removed, id)
	}
	slices.Sort(change.Removed)

	return change
}

// cloneRoutes returns a deep copy of routes.
func cloneRoutes(routes []Route) []Route {
	if routes == nil {
		return nil
	}

	out := make([]Route, len(routes))
	for i, r := range routes {
		out[i] = Route{ID: r.ID, Host: r.Host, Upstreams: slices.Clone(r.Upstreams)}
	}

	return out
}

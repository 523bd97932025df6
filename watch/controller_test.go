package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// pollTimeout bounds every wait for the controller. It is a deadline for a
// hung test, not a speed requirement, so it is generous for a loaded
// machine running the race detector.
const pollTimeout = 30 * time.Second

// controllerFixture runs a Controller against a fake clientset and a fake
// writer.
type controllerFixture struct {
	t      *testing.T
	client *fake.Clientset
	writer *fakeWriter
	c      *Controller
	// resourceVersion is the last resource version stamped on an object.
	// The fake clientset stores the resource version the client sends and
	// never sets one. The controller ignores updates with an unchanged
	// resource version, because periodic resyncs look like that, so every
	// write in these tests stamps a new one.
	resourceVersion atomic.Int64
}

// newFixture returns a Controller over testNamespace that is not running
// yet, with objects already stored in the fake clientset. opts may set any
// field but Namespaces, Namer and Logger. DriftInterval defaults to an hour
// so that only changes cause writes.
func newFixture(t *testing.T, writer RouteWriter, opts Options, objects ...runtime.Object) *controllerFixture {
	t.Helper()

	f := &controllerFixture{t: t}
	switch w := writer.(type) {
	case *fakeWriter:
		f.writer = w
	case *readingWriter:
		f.writer = w.fakeWriter
	case *probingWriter:
		f.writer = w.fakeWriter
	default:
		t.Fatalf("unexpected writer type %T", writer)
	}
	for _, obj := range objects {
		f.stamp(obj)
	}
	f.client = fake.NewClientset(objects...)

	opts.Namespaces = []string{testNamespace}
	opts.Namer = newTestNamer(t)
	opts.Logger = testLogger(t)
	if opts.DriftInterval == 0 {
		opts.DriftInterval = time.Hour
	}

	c, err := New(f.client, writer, opts)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	f.c = c

	return f
}

// start runs the controller until the test ends.
func (f *controllerFixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()

	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run() error = %v", err)
		}
	})
}

// startController returns a running fixture; see newFixture.
func startController(t *testing.T, writer RouteWriter, opts Options, objects ...runtime.Object) *controllerFixture {
	t.Helper()

	f := newFixture(t, writer, opts, objects...)
	f.start()

	return f
}

// stamp gives obj the next resource version.
func (f *controllerFixture) stamp(obj runtime.Object) {
	f.t.Helper()

	accessor, err := meta.Accessor(obj)
	if err != nil {
		f.t.Fatal(err)
	}
	accessor.SetResourceVersion(strconv.FormatInt(f.resourceVersion.Add(1), 10))
}

// createDeployment stores d through the fake clientset and waits until the
// controller's cache has it. Pods created after it then never find their
// Deployment missing, as they would not with the Deployment controller.
func (f *controllerFixture) createDeployment(d *appsv1.Deployment) {
	f.t.Helper()

	f.stamp(d)
	if _, err := f.client.AppsV1().Deployments(d.Namespace).Create(f.t.Context(), d, metav1.CreateOptions{}); err != nil {
		f.t.Fatalf("creating deployment %s: %v", d.Name, err)
	}
	f.waitFor("deployment "+d.Name+" in the cache", func() bool {
		return f.c.cachedDeployment(d.Namespace, d.Name) != nil
	})
}

// updateDeployment reads the Deployment name, applies change and stores it.
func (f *controllerFixture) updateDeployment(name string, change func(*appsv1.Deployment)) {
	f.t.Helper()

	deployments := f.client.AppsV1().Deployments(testNamespace)
	d, err := deployments.Get(f.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("getting deployment %s: %v", name, err)
	}
	change(d)
	f.stamp(d)
	if _, err := deployments.Update(f.t.Context(), d, metav1.UpdateOptions{}); err != nil {
		f.t.Fatalf("updating deployment %s: %v", name, err)
	}
}

// createPod stores pod through the fake clientset, status included.
func (f *controllerFixture) createPod(pod *corev1.Pod) {
	f.t.Helper()

	f.stamp(pod)
	if _, err := f.client.CoreV1().Pods(pod.Namespace).Create(f.t.Context(), pod, metav1.CreateOptions{}); err != nil {
		f.t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
}

// updatePod reads the pod name, applies change and stores it with Update,
// or with UpdateStatus when status is true.
func (f *controllerFixture) updatePod(name string, status bool, change func(*corev1.Pod)) {
	f.t.Helper()

	pods := f.client.CoreV1().Pods(testNamespace)
	pod, err := pods.Get(f.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("getting pod %s: %v", name, err)
	}
	change(pod)
	f.stamp(pod)
	if status {
		_, err = pods.UpdateStatus(f.t.Context(), pod, metav1.UpdateOptions{})
	} else {
		_, err = pods.Update(f.t.Context(), pod, metav1.UpdateOptions{})
	}
	if err != nil {
		f.t.Fatalf("updating pod %s: %v", name, err)
	}
}

// waitFor polls condition until it is true, and fails the test with what
// and the writer's routes if pollTimeout passes first.
func (f *controllerFixture) waitFor(what string, condition func() bool) {
	f.t.Helper()

	err := wait.PollUntilContextTimeout(f.t.Context(), 10*time.Millisecond, pollTimeout, true,
		func(context.Context) (bool, error) { return condition(), nil })
	if err != nil {
		routes, _ := f.writer.currentRoutes()
		f.t.Fatalf("waiting for %s: %v; routes in the writer: %+v", what, err, routes)
	}
}

// waitForRoutes waits until the last successful write holds exactly want.
func (f *controllerFixture) waitForRoutes(want ...Route) {
	f.t.Helper()

	f.waitFor(fmt.Sprintf("routes %+v", want), func() bool {
		routes, ok := f.writer.currentRoutes()
		return ok && routesEqual(routes, want)
	})
}

// waitForFirstWrite waits for the first write of a writer that never fails
// and returns its routes.
func (f *controllerFixture) waitForFirstWrite() []Route {
	f.t.Helper()

	f.waitFor("the first write", func() bool {
		_, ok := f.writer.currentRoutes()
		return ok
	})

	return f.writer.recordedCalls()[0]
}

// events returns the Events recorded on the Deployment name with reason.
func (f *controllerFixture) events(name, reason string) []corev1.Event {
	f.t.Helper()

	list, err := f.client.CoreV1().Events(testNamespace).List(f.t.Context(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatalf("listing events: %v", err)
	}

	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Deployment" && e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}

	return out
}

// waitForEvent waits for an Event with reason on the Deployment name and
// returns it.
func (f *controllerFixture) waitForEvent(name, reason string) corev1.Event {
	f.t.Helper()

	var found []corev1.Event
	f.waitFor(fmt.Sprintf("event %s on deployment %s", reason, name), func() bool {
		found = f.events(name, reason)
		return len(found) > 0
	})

	return found[0]
}

// deploymentPatches returns the patches the controller sent for the
// Deployment name, in order.
func (f *controllerFixture) deploymentPatches(name string) []clienttesting.PatchActionImpl {
	var out []clienttesting.PatchActionImpl
	for _, action := range f.client.Actions() {
		patch, ok := action.(clienttesting.PatchActionImpl)
		if ok && patch.Matches("patch", "deployments") && patch.GetNamespace() == testNamespace && patch.GetName() == name {
			out = append(out, patch)
		}
	}

	return out
}

// routesEqual reports whether a and b hold equal routes in the same order.
func routesEqual(a, b []Route) bool {
	return slices.EqualFunc(a, b, Route.Equal)
}

// routeByID returns the route with id in routes.
func routeByID(routes []Route, id string) (Route, bool) {
	for _, r := range routes {
		if r.ID == id {
			return r, true
		}
	}

	return Route{}, false
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	namer := newTestNamer(t)

	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "no namespace", opts: Options{Namer: namer}, wantErr: "no namespace to watch"},
		{name: "invalid namespace", opts: Options{Namespaces: []string{"Team_A"}, Namer: namer}, wantErr: `invalid namespace "Team_A"`},
		{name: "no namer", opts: Options{Namespaces: []string{testNamespace}}, wantErr: "no Namer"},
		{name: "invalid route id prefix", opts: Options{Namespaces: []string{testNamespace}, Namer: namer, RouteIDPrefix: "a/b"}, wantErr: `route id prefix "a/b"`},
		{name: "default port too high", opts: Options{Namespaces: []string{testNamespace}, Namer: namer, DefaultPort: 70000}, wantErr: "invalid default port 70000"},
		{name: "negative default port", opts: Options{Namespaces: []string{testNamespace}, Namer: namer, DefaultPort: -1}, wantErr: "invalid default port -1"},
		{name: "invalid ip family", opts: Options{Namespaces: []string{testNamespace}, Namer: namer, IPFamily: "IPv5"}, wantErr: `invalid IP family "IPv5"`},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(fake.NewClientset(), &fakeWriter{}, tt.opts)

			if err == nil {
				c.broadcaster.Shutdown()
				t.Fatalf("New() error = nil, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestControllerHasSynced(t *testing.T) {
	f := newFixture(t, &fakeWriter{}, Options{}, newDeployment("a", portAnnotation("8080")))

	if f.c.HasSynced() {
		t.Error("HasSynced() = true before Run, want false")
	}

	f.start()
	f.waitFor("HasSynced", f.c.HasSynced)
}

func TestControllerRoutesReadyPods(t *testing.T) {
	f := startController(t, &fakeWriter{}, Options{},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
		newDeployment("b", portAnnotation(testPortName)),
		newPod("b", "b-1", "10.0.0.3"),
		newPod("b", "b-2", "10.0.0.2"),
		newDeployment("c", nil),
		newPod("c", "c-1", "fd00::1"),
	)

	got := f.waitForFirstWrite()

	want := []Route{
		testRoute("a", "10.0.0.1:8080"),
		testRoute("b", "10.0.0.2:3000", "10.0.0.3:3000"),
		testRoute("c", "[fd00::1]:8089"),
	}
	if !routesEqual(got, want) {
		t.Errorf("first write = %+v, want %+v", got, want)
	}
}

func TestControllerNoRouteWithoutReadyPod(t *testing.T) {
	deleted := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	f := startController(t, &fakeWriter{}, Options{},
		newDeployment("idle", portAnnotation("8080")),
		newDeployment("starting", portAnnotation("8080")),
		withPod(newPod("starting", "starting-1", "10.0.0.1"), func(p *corev1.Pod) { setReady(p, corev1.ConditionFalse) }),
		newDeployment("stopping", portAnnotation("8080")),
		withPod(newPod("stopping", "stopping-1", "10.0.0.2"), func(p *corev1.Pod) {
			p.DeletionTimestamp = &deleted
			p.Finalizers = []string{"example.test/hold"}
		}),
		newDeployment("done", portAnnotation("8080")),
		withPod(newPod("done", "done-1", "10.0.0.3"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
	)

	if got := f.waitForFirstWrite(); len(got) != 0 {
		t.Errorf("first write = %+v, want no routes", got)
	}

	// the route appears once the pod turns Ready
	f.updatePod("starting-1", true, func(p *corev1.Pod) { setReady(p, corev1.ConditionTrue) })
	f.waitForRoutes(testRoute("starting", "10.0.0.1:8080"))
}

func TestControllerRoutesNewDeployment(t *testing.T) {
	f := startController(t, &fakeWriter{}, Options{})
	f.waitForRoutes()

	f.createDeployment(newDeployment("a", portAnnotation("8080")))
	f.createPod(newPod("a", "a-1", "10.0.0.1"))

	f.waitForRoutes(testRoute("a", "10.0.0.1:8080"))
	event := f.waitForEvent("a", ReasonRouteCreated)
	if event.Type != corev1.EventTypeNormal {
		t.Errorf("event type = %q, want %q", event.Type, corev1.EventTypeNormal)
	}
	if !strings.Contains(event.Message, "a.example.test -> 10.0.0.1:8080") {
		t.Errorf("event message = %q, want it to name the host and upstream", event.Message)
	}
}

func TestControllerRemovesDeletedDeployment(t *testing.T) {
	f := startController(t, &fakeWriter{}, Options{},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
		newDeployment("b", portAnnotation("8080")),
		newPod("b", "b-1", "10.0.0.2"),
	)
	f.waitForRoutes(testRoute("a", "10.0.0.1:8080"), testRoute("b", "10.0.0.2:8080"))

	err := f.client.AppsV1().Deployments(testNamespace).Delete(t.Context(), "a", metav1.DeleteOptions{})
	if err != nil {
		t.Fatalf("deleting deployment a: %v", err)
	}

	// the fake clientset has no garbage collector, so pod a-1 stays Ready
	f.waitForRoutes(testRoute("b", "10.0.0.2:8080"))
}

func TestControllerRemovesRouteWithoutReadyPods(t *testing.T) {
	f := startController(t, &fakeWriter{}, Options{},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
		newPod("a", "a-2", "10.0.0.2"),
	)
	f.waitForRoutes(testRoute("a", "10.0.0.1:8080", "10.0.0.2:8080"))

	err := f.client.CoreV1().Pods(testNamespace).Delete(t.Context(), "a-1", metav1.DeleteOptions{})
	if err != nil {
		t.Fatalf("deleting pod a-1: %v", err)
	}
	f.waitForRoutes(testRoute("a", "10.0.0.2:8080"))

	f.updatePod("a-2", true, func(p *corev1.Pod) { setReady(p, corev1.ConditionFalse) })
	f.waitForRoutes()

	event := f.waitForEvent("a", ReasonRouteRemoved)
	if event.Type != corev1.EventTypeNormal {
		t.Errorf("event type = %q, want %q", event.Type, corev1.EventTypeNormal)
	}
}

func TestControllerInvalidPort(t *testing.T) {
	f := startController(t, &fakeWriter{}, Options{},
		newDeployment("a", portAnnotation("web")),
		newPod("a", "a-1", "10.0.0.1"),
		newDeployment("b", portAnnotation("8080")),
		newPod("b", "b-1", "10.0.0.2"),
	)

	want := []Route{testRoute("b", "10.0.0.2:8080")}
	if got := f.waitForFirstWrite(); !routesEqual(got, want) {
		t.Errorf("first write = %+v, want %+v", got, want)
	}

	event := f.waitForEvent("a", ReasonInvalidPort)
	if event.Type != corev1.EventTypeWarning {
		t.Errorf("event type = %q, want %q", event.Type, corev1.EventTypeWarning)
	}
	if !strings.Contains(event.Message, `"web"`) {
		t.Errorf("event message = %q, want it to name the value \"web\"", event.Message)
	}
	if !strings.Contains(event.Message, "no route is created") {
		t.Errorf("event message = %q, want it to say that no route is created", event.Message)
	}
	if got, _ := f.writer.currentRoutes(); !routesEqual(got, want) {
		t.Errorf("routes after the event = %+v, want %+v", got, want)
	}
	if events := f.events("b", ReasonInvalidPort); len(events) != 0 {
		t.Errorf("deployment b has %d InvalidPort events, want none", len(events))
	}
}

func TestControllerInvalidPortKeepsRoute(t *testing.T) {
	f := startController(t, &fakeWriter{}, Options{},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
	)
	f.waitForRoutes(testRoute("a", "10.0.0.1:8080"))

	f.updateDeployment("a", func(d *appsv1.Deployment) { d.Annotations[routing.AnnotationPort] = "web" })

	event := f.waitForEvent("a", ReasonInvalidPort)
	if !strings.Contains(event.Message, "keeping the last valid port 8080") {
		t.Errorf("event message = %q, want it to say the port 8080 is kept", event.Message)
	}
	if got, _ := f.writer.currentRoutes(); !routesEqual(got, []Route{testRoute("a", "10.0.0.1:8080")}) {
		t.Errorf("routes after the invalid edit = %+v, want the route at port 8080", got)
	}

	// a new pod is still routed at the kept port
	f.createPod(newPod("a", "a-2", "10.0.0.2"))
	f.waitForRoutes(testRoute("a", "10.0.0.1:8080", "10.0.0.2:8080"))

	// fixing the annotation moves the route to the new port
	f.updateDeployment("a", func(d *appsv1.Deployment) { d.Annotations[routing.AnnotationPort] = "9090" })
	f.waitForRoutes(testRoute("a", "10.0.0.1:9090", "10.0.0.2:9090"))
}

// readingWriter is a fakeWriter that also implements RouteReader. Routes
// returns routes as the routes Caddy had at start-up, or err if it is set.
type readingWriter struct {
	*fakeWriter
	routes []Route
	err    error
}

func (w *readingWriter) Routes(context.Context) ([]Route, error) {
	if w.err != nil {
		return nil, w.err
	}

	return cloneRoutes(w.routes), nil
}

func TestControllerInvalidPortKeepsCaddyPortAtStart(t *testing.T) {
	writer := &readingWriter{
		fakeWriter: &fakeWriter{},
		routes:     []Route{testRoute("a", "10.0.0.1:8080"), testRoute("gone", "10.0.0.9:8080")},
	}
	f := startController(t, writer, Options{},
		newDeployment("a", portAnnotation("web")),
		newPod("a", "a-1", "10.0.0.1"),
		newPod("a", "a-2", "10.0.0.2"),
		newDeployment("b", portAnnotation("web")),
		newPod("b", "b-1", "10.0.0.3"),
	)

	// a keeps Caddy's port with the upstreams of its pods now; b had no
	// route, so it gets none, and gone's Deployment no longer exists
	want := []Route{testRoute("a", "10.0.0.1:8080", "10.0.0.2:8080")}
	if got := f.waitForFirstWrite(); !routesEqual(got, want) {
		t.Errorf("first write = %+v, want %+v", got, want)
	}

	event := f.waitForEvent("a", ReasonInvalidPort)
	if !strings.Contains(event.Message, "keeping the last valid port 8080") {
		t.Errorf("event message of a = %q, want it to say the port 8080 is kept", event.Message)
	}
	event = f.waitForEvent("b", ReasonInvalidPort)
	if !strings.Contains(event.Message, "no route is created") {
		t.Errorf("event message of b = %q, want it to say that no route is created", event.Message)
	}
}

func TestControllerRouteReaderFails(t *testing.T) {
	writer := &readingWriter{fakeWriter: &fakeWriter{}, err: errors.New("caddy admin API unreachable")}
	f := startController(t, writer, Options{},
		newDeployment("a", portAnnotation("web")),
		newPod("a", "a-1", "10.0.0.1"),
		newDeployment("b", portAnnotation("8080")),
		newPod("b", "b-1", "10.0.0.2"),
	)

	want := []Route{testRoute("b", "10.0.0.2:8080")}
	if got := f.waitForFirstWrite(); !routesEqual(got, want) {
		t.Errorf("first write = %+v, want %+v", got, want)
	}
	if !f.c.HasSynced() {
		t.Error("HasSynced() = false after the first write, want true")
	}
}

func TestControllerBackfillsAnnotation(t *testing.T) {
	f := startController(t, &fakeWriter{}, Options{Workers: 1},
		newDeployment("missing", portAnnotation("8080")),
		newDeployment("current", map[string]string{routing.AnnotationPort: "8080", routing.AnnotationRouteURL: "current.example.test"}),
		newDeployment("stale", map[string]string{routing.AnnotationPort: "8080", routing.AnnotationRouteURL: "old.example.test"}),
	)
	f.waitFor("HasSynced", f.c.HasSynced)

	// With one worker and a FIFO queue, the Deployment created last is
	// synced after the ones queued at start.
	f.createDeployment(newDeployment("last", portAnnotation("8080")))
	f.waitFor("the patch of deployment last", func() bool { return len(f.deploymentPatches("last")) > 0 })

	for _, name := range []string{"missing", "stale", "last"} {
		patches := f.deploymentPatches(name)
		if len(patches) == 0 {
			t.Errorf("deployment %s was not patched", name)
			continue
		}
		patch := patches[0]
		if patch.GetPatchType() != types.MergePatchType {
			t.Errorf("patch type of %s = %q, want %q", name, patch.GetPatchType(), types.MergePatchType)
		}
		var got map[string]any
		if err := json.Unmarshal(patch.GetPatch(), &got); err != nil {
			t.Fatalf("patch of %s is not JSON: %v", name, err)
		}
		want := map[string]any{"metadata": map[string]any{"annotations": map[string]any{
			routing.AnnotationRouteURL: name + ".example.test",
		}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("patch of %s = %s, want %v", name, patch.GetPatch(), want)
		}
		if strings.Contains(string(patch.GetPatch()), "resourceVersion") {
			t.Errorf("patch of %s = %s, want no resourceVersion", name, patch.GetPatch())
		}
		if patch.PatchOptions.FieldManager != FieldManager {
			t.Errorf("field manager of %s = %q, want %q", name, patch.PatchOptions.FieldManager, FieldManager)
		}

		stored, err := f.client.AppsV1().Deployments(testNamespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting deployment %s: %v", name, err)
		}
		if got := stored.Annotations[routing.AnnotationRouteURL]; got != name+".example.test" {
			t.Errorf("stored annotation of %s = %q, want %q", name, got, name+".example.test")
		}
		if got := stored.Annotations[routing.AnnotationPort]; got != "8080" {
			t.Errorf("stored port annotation of %s = %q, want the patch to keep %q", name, got, "8080")
		}
	}
	if patches := f.deploymentPatches("current"); len(patches) != 0 {
		t.Errorf("deployment current was patched %d times, want 0", len(patches))
	}
}

func TestControllerRetriesFailedWrite(t *testing.T) {
	errUnreachable := errors.New("caddy admin API unreachable")
	writer := &fakeWriter{err: errUnreachable}
	f := startController(t, writer, Options{},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
	)

	f.waitFor("a retried write", func() bool {
		_, failures, _ := writer.counts()
		return failures >= 2 && f.c.LastSyncError() != nil
	})
	if err := f.c.LastSyncError(); !errors.Is(err, errUnreachable) {
		t.Errorf("LastSyncError() = %v, want %v", err, errUnreachable)
	}
	if _, ok := writer.currentRoutes(); ok {
		t.Error("a write succeeded while the writer fails")
	}

	writer.setErr(nil)

	f.waitForRoutes(testRoute("a", "10.0.0.1:8080"))
	f.waitFor("LastSyncError to clear", func() bool { return f.c.LastSyncError() == nil })
}

func TestControllerKeepsRoutesOnFailedWrite(t *testing.T) {
	writer := &fakeWriter{}
	f := startController(t, writer, Options{},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
		newDeployment("b", portAnnotation("8080")),
		newPod("b", "b-1", "10.0.0.2"),
	)
	routeA, routeB := testRoute("a", "10.0.0.1:8080"), testRoute("b", "10.0.0.2:8080")
	f.waitForRoutes(routeA, routeB)
	firstFailed, _, _ := writer.counts()

	// fail while a third Deployment becomes Ready, until the write is retried
	writer.setErr(errors.New("caddy admin API unreachable"))
	f.createDeployment(newDeployment("c", portAnnotation("8080")))
	f.createPod(newPod("c", "c-1", "10.0.0.3"))
	routeC := testRoute("c", "10.0.0.3:8080")
	f.waitFor("two failed writes with route c", func() bool {
		failedWithC := 0
		for _, routes := range writer.recordedCalls()[firstFailed:] {
			if _, ok := routeByID(routes, routeC.ID); ok {
				failedWithC++
			}
		}
		return failedWithC >= 2
	})

	writer.setErr(nil)
	f.waitForRoutes(routeA, routeB, routeC)

	calls := writer.recordedCalls()[firstFailed:]
	for i, routes := range calls {
		for _, want := range []Route{routeA, routeB} {
			got, ok := routeByID(routes, want.ID)
			if !ok {
				t.Errorf("call %d after the first failure lacks route %s: %+v", i, want.ID, routes)
				continue
			}
			if !got.Equal(want) {
				t.Errorf("call %d after the first failure has route %+v, want %+v", i, got, want)
			}
		}
	}
}

func TestControllerIgnoresPodStatusNoise(t *testing.T) {
	writer := &fakeWriter{}
	f := startController(t, writer, Options{Workers: 1},
		newDeployment("a", portAnnotation("8080")),
		newPod("a", "a-1", "10.0.0.1"),
		newDeployment("z", portAnnotation("8080")),
	)
	routeA := testRoute("a", "10.0.0.1:8080")
	f.waitForRoutes(routeA)

	// Each step below changes pod a-1 and then adds a pod of z. With one
	// worker and a FIFO queue, a is synced before z, so once z's new
	// upstream is written, the change to a-1 has been handled.
	f.createPod(newPod("z", "z-0", "10.0.0.100"))
	f.waitForRoutes(routeA, testRoute("z", "10.0.0.100:8080"))
	start, _, differingBefore := writer.counts()

	f.updatePod("a-1", true, func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "workspace", Ready: true, RestartCount: 1}}
	})
	f.createPod(newPod("z", "z-1", "10.0.0.101"))
	f.waitForRoutes(routeA, testRoute("z", "10.0.0.100:8080", "10.0.0.101:8080"))

	f.updatePod("a-1", false, func(p *corev1.Pod) {
		p.Annotations = map[string]string{"example.test/last-seen": "now"}
	})
	f.createPod(newPod("z", "z-2", "10.0.0.102"))
	f.waitForRoutes(routeA, testRoute("z", "10.0.0.100:8080", "10.0.0.101:8080", "10.0.0.102:8080"))

	// check that both changes reached the cache
	stored, err := f.client.CoreV1().Pods(testNamespace).Get(t.Context(), "a-1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting pod a-1: %v", err)
	}
	cached, exists, err := f.c.podIndexers[testNamespace].GetByKey(testNamespace + "/a-1")
	if err != nil || !exists {
		t.Fatalf("pod a-1 is not in the cache: exists %t, err %v", exists, err)
	}
	if rv := cached.(*corev1.Pod).ResourceVersion; rv != stored.ResourceVersion {
		t.Fatalf("cached pod a-1 has resourceVersion %s, want %s", rv, stored.ResourceVersion)
	}

	_, _, differingAfter := writer.counts()
	if differingAfter != differingBefore+2 {
		t.Errorf("writes that changed routes = %d, want %d (one per new pod of z)", differingAfter-differingBefore, 2)
	}
	for i, routes := range writer.recordedCalls()[start:] {
		if got, ok := routeByID(routes, routeA.ID); !ok || !got.Equal(routeA) {
			t.Errorf("call %d has route a %+v (present %t), want %+v", i, got, ok, routeA)
		}
	}
}

// createDeployments creates n Deployments without pods and returns their
// names.
func (f *controllerFixture) createDeployments(n int) []string {
	f.t.Helper()

	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("ws-%02d", i)
		f.createDeployment(newDeployment(names[i], portAnnotation("8080")))
	}

	return names
}

// createReadyPods creates one Ready pod for each Deployment in names and
// returns the routes they get, sorted by ID.
func (f *controllerFixture) createReadyPods(names []string) []Route {
	f.t.Helper()

	routes := make([]Route, len(names))
	for i, name := range names {
		ip := fmt.Sprintf("10.0.1.%d", i+1)
		f.createPod(newPod(name, name+"-1", ip))
		routes[i] = testRoute(name, ip+":8080")
	}

	return routes
}

func TestControllerCoalescesWrites(t *testing.T) {
	const deployments = 20
	writer := &fakeWriter{}
	f := startController(t, writer, Options{})
	names := f.createDeployments(deployments)

	// Hold the writer in its first call of the burst until every claim is
	// computed, as a slow Caddy reload would.
	release := writer.pause()
	t.Cleanup(release)
	before, _, _ := writer.counts()
	want := f.createReadyPods(names)
	f.waitFor("every deployment's claim with its upstream", func() bool {
		f.c.mu.Lock()
		defer f.c.mu.Unlock()

		routed := 0
		for _, c := range f.c.claims {
			if len(c.route.Upstreams) > 0 {
				routed++
			}
		}
		return routed == deployments
	})
	release()
	f.waitForRoutes(want...)

	after, _, _ := writer.counts()
	if calls := after - before; calls >= deployments {
		t.Errorf("SetRoutes calls for %d Deployments turning Ready = %d, want fewer than %d", deployments, calls, deployments)
	}
}

func TestControllerWritePerChange(t *testing.T) {
	const deployments = 10
	writer := &fakeWriter{}
	f := startController(t, writer, Options{WritePerChange: true})
	names := f.createDeployments(deployments)

	// Hold the writer while the pods turn Ready, as in
	// TestControllerCoalescesWrites.
	release := writer.pause()
	t.Cleanup(release)
	before, _, _ := writer.counts()
	want := f.createReadyPods(names)
	release()
	f.waitForRoutes(want...)

	// Each pod that turns Ready changes its Deployment's claim, and each
	// change is written in its own call. A call can carry changes whose own
	// calls still wait for the write lock, so wait for those.
	f.waitFor(fmt.Sprintf("at least %d SetRoutes calls", deployments), func() bool {
		calls, _, _ := writer.counts()
		return calls-before >= deployments
	})
}

func TestControllerRouteRemovedMessage(t *testing.T) {
	// Caddy still has the route of a from before a restart, and the router
	// could not read it at start-up, so a's invalid port removes it.
	writer := &readingWriter{
		fakeWriter: &fakeWriter{current: []Route{testRoute("a", "10.0.0.1:8080")}},
		err:        errors.New("caddy admin API unreachable"),
	}
	f := startController(t, writer, Options{},
		newDeployment("a", portAnnotation("web")),
		newPod("a", "a-1", "10.0.0.1"),
	)
	f.waitForRoutes()

	event := f.waitForEvent("a", ReasonRouteRemoved)
	if strings.Contains(event.Message, "no pod is Ready") {
		t.Errorf("event message = %q, but pod a-1 is Ready: the route was removed for the invalid port annotation", event.Message)
	}
}

func TestReportConflictsDuringForget(t *testing.T) {
	c := newIdleController(t)
	c.log = slog.New(slog.DiscardHandler)

	// The writer reports conflicts while a worker drops the claim of a
	// deleted Deployment. Run with -race to see the data race.
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 {
			c.forget("other/web")
		}
	})
	for range 2000 {
		c.reportConflicts(map[string]string{"b/web": "a/web", "c/web": "a/web"})
	}
	wg.Wait()
}

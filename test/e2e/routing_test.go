package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

const routeURLAnnotation = "gitspace.caddy.route.url"

func TestWorkspaceRoutedWhenReady(t *testing.T) {
	e := newEnv(t, routerOptions{})

	created := e.createDeployment("vscode", 1, 8080, "8080")
	if got := created.Annotations[routeURLAnnotation]; got != host("vscode") {
		t.Errorf("create response annotation %s = %q, want %q", routeURLAnnotation, got, host("vscode"))
	}

	body := e.waitServedBy(host("vscode"), 60*time.Second)
	pods := e.readyPods("vscode")
	if len(pods) != 1 || body != pods[0] {
		t.Errorf("answered by %q, want the Ready pod %v", body, pods)
	}

	// another host still falls through to the catch-all
	if status, got := e.get(host("other")); status != http.StatusNotFound || got != testbed.CatchAllBody {
		t.Errorf("GET %s = %d %q, want the catch-all 404", host("other"), status, got)
	}

	// the metrics show the route, the queue and the admin calls
	status, metrics := e.healthBody("/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics status %d", status)
	}
	for _, want := range []string{
		"caddy_k8s_router_managed_routes 1",
		`workqueue_adds_total{name="deployments"}`,
		"go_goroutines",
		`caddy_k8s_router_admin_requests_total{`,
		`caddy_k8s_router_route_syncs_total{result="written"}`,
		"caddy_k8s_router_pod_ready_to_route_written_seconds_count",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestScaleAndRollingUpdate(t *testing.T) {
	e := newEnv(t, routerOptions{})
	ctx := t.Context()

	// a preStop sleep keeps a terminating pod serving while the router
	// takes it out of Caddy, as workspaces should have
	d := deployment("web", 1, 8080, "http")
	d.Spec.Template.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	if _, err := e.client.AppsV1().Deployments(e.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitServedBy(host("web"), 60*time.Second)

	// scaled to 3, each pod responds
	e.scale("web", 3)
	e.poll("3 Ready pods", 60*time.Second, func() (bool, error) { return len(e.readyPods("web")) == 3, nil })
	e.waitEveryPodAnswers("web")

	// a rolling update while a client loops: no request fails
	var (
		requests, failures atomic.Int64
		firstFailure       atomic.Value
		wg                 sync.WaitGroup
	)
	loopCtx, stopLoop := context.WithCancel(ctx)
	wg.Go(func() {
		for loopCtx.Err() == nil {
			status, body, err := e.caddy.Get(loopCtx, host("web"), "/")
			if loopCtx.Err() != nil {
				return
			}
			requests.Add(1)
			if err != nil || status != http.StatusOK {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, []any{status, body, err})
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	before := e.readyPods("web")
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"rollout":"2"}}}}}`)
	if _, err := e.client.AppsV1().Deployments(e.ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.poll("the rollout to replace every pod", 120*time.Second, func() (bool, error) {
		now := e.readyPods("web")
		if len(now) != 3 {
			return false, nil
		}
		for _, p := range now {
			if slices.Contains(before, p) {
				return false, nil
			}
		}
		d, err := e.client.AppsV1().Deployments(e.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.UpdatedReplicas == 3 && d.Status.Replicas == 3, nil
	})
	// keep the client going until the new pods are all in Caddy
	e.waitEveryPodAnswers("web")
	stopLoop()
	wg.Wait()

	if requests.Load() == 0 {
		t.Fatal("the client sent no request during the rollout")
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during the rolling update; first: %v", n, requests.Load(), firstFailure.Load())
	}
}

func TestPodsLeaveUpstreams(t *testing.T) {
	e := newEnv(t, routerOptions{})
	ctx := t.Context()

	d := deployment("leaving", 2, 8080, "8080")
	d.Spec.Template.Labels[testbed.HoldTerminationLabel] = "true"
	if _, err := e.client.AppsV1().Deployments(e.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.poll("2 Ready pods", 60*time.Second, func() (bool, error) { return len(e.readyPods("leaving")) == 2, nil })
	e.poll("2 upstreams", 30*time.Second, func() (bool, error) { return len(e.upstreams("leaving")) == 2, nil })
	pods := e.readyPods("leaving")

	// a pod that becomes unready leaves the upstreams
	if err := kubelet.SetReady(e.ns, pods[0], false); err != nil {
		t.Fatal(err)
	}
	e.poll("the unready pod to leave", 30*time.Second, func() (bool, error) {
		ups := e.upstreams("leaving")
		return len(ups) == 1 && !slices.Contains(ups, e.dial(pods[0])), nil
	})
	if err := kubelet.SetReady(e.ns, pods[0], true); err != nil {
		t.Fatal(err)
	}
	e.poll("the pod to come back", 30*time.Second, func() (bool, error) { return len(e.upstreams("leaving")) == 2, nil })

	// a terminating pod leaves the upstreams while it still runs
	if err := e.client.CoreV1().Pods(e.ns).Delete(ctx, pods[1], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.poll("the terminating pod to leave", 30*time.Second, func() (bool, error) {
		return !slices.Contains(e.upstreams("leaving"), e.dial(pods[1])), nil
	})
	if err := kubelet.FinishDeletion(e.ns, pods[1]); err != nil {
		t.Fatal(err)
	}

	// scaled to 0: the catch-all responds
	e.scale("leaving", 0)
	list, err := e.client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=leaving"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitCatchAll(host("leaving"), 30*time.Second)
	for _, p := range list.Items {
		_ = kubelet.FinishDeletion(e.ns, p.Name)
	}
	if slices.Contains(e.routeIDs(), e.routeID("leaving")) {
		t.Errorf("route %s still in Caddy with no Ready pod", e.routeID("leaving"))
	}

	// scaled back and deleted: the route is gone
	e.scale("leaving", 1)
	e.waitServedBy(host("leaving"), 60*time.Second)
	if err := e.client.AppsV1().Deployments(e.ns).Delete(ctx, "leaving", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	e.poll("the route to be removed", 30*time.Second, func() (bool, error) {
		return !slices.Contains(e.routeIDs(), e.routeID("leaving")), nil
	})
	list, err = e.client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=leaving"})
	if err == nil {
		for _, p := range list.Items {
			_ = kubelet.FinishDeletion(e.ns, p.Name)
		}
	}
}

func TestCaddyRestartRestoresRoutes(t *testing.T) {
	// a drift interval longer than the test: the routes come back through
	// the first-route probe, every second
	e := newEnv(t, routerOptions{extraArgs: []string{"--drift-interval=10m"}})

	e.createDeployment("survivor", 1, 8080, "8080")
	e.waitServedBy(host("survivor"), 60*time.Second)

	if err := e.caddy.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(e.routeIDs(), e.routeID("survivor")) {
		t.Fatal("the route survived a restart without --resume; the test cannot show the repair")
	}

	e.waitServedBy(host("survivor"), 5*time.Second)
}

func TestRouterRestartRemovesStaleRoutes(t *testing.T) {
	e := newEnv(t, routerOptions{})
	ctx := t.Context()

	e.createDeployment("kept", 1, 8080, "8080")
	e.createDeployment("gone", 1, 8080, "8080")
	e.waitServedBy(host("kept"), 60*time.Second)
	e.waitServedBy(host("gone"), 60*time.Second)

	// a route of another client, added by hand
	foreign := `{"@id":"foreign-route","match":[{"host":["foreign.e2e.test"]}],"handle":[{"handler":"static_response","body":"foreign"}]}`
	status, _, body, err := e.caddy.Admin(ctx, http.MethodPut, "/config/apps/http/servers/srv0/routes/0", []byte(foreign))
	if err != nil || status != http.StatusOK {
		t.Fatalf("adding the foreign route: %d %s %v", status, body, err)
	}

	// stop the router, delete a Deployment, start the router
	if err := e.router.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := e.router.ExitCode(); code != 0 {
		t.Errorf("router exit code after SIGTERM = %d, want 0", code)
	}
	if !slices.Contains(e.routeIDs(), e.routeID("gone")) {
		t.Fatal("the router removed a route on shutdown")
	}
	if err := e.client.AppsV1().Deployments(e.ns).Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.startRouter()
	e.waitReady()

	e.poll("the stale route to be removed", 30*time.Second, func() (bool, error) {
		return !slices.Contains(e.routeIDs(), e.routeID("gone")), nil
	})
	ids := e.routeIDs()
	if !slices.Contains(ids, "foreign-route") {
		t.Errorf("the foreign route is gone; routes: %v", ids)
	}
	if !slices.Contains(ids, e.routeID("kept")) {
		t.Errorf("the live route is gone; routes: %v", ids)
	}
	if ids[len(ids)-1] != testbed.CatchAllID {
		t.Errorf("the catch-all is not last; routes: %v", ids)
	}
}

func TestSteadyStateWritesNothing(t *testing.T) {
	e := newEnv(t, routerOptions{extraArgs: []string{"--resync-period=1s"}})

	e.createDeployment("steady", 2, 8080, "8080")
	e.poll("2 upstreams", 60*time.Second, func() (bool, error) { return len(e.upstreams("steady")) == 2, nil })
	// let the backfill and events settle before taking the Etag
	time.Sleep(1500 * time.Millisecond)
	_, before := e.routes()

	// three resync periods and three drift checks
	time.Sleep(3500 * time.Millisecond)
	_, after := e.routes()
	if after != before {
		t.Errorf("Caddy's routes Etag changed from %s to %s with no change in the cluster", before, after)
	}
}

func TestReadyzFollowsCaddy(t *testing.T) {
	e := newEnv(t, routerOptions{noWebhook: true})

	if status, body := e.health("/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz = %d %q, want 200", status, body)
	}

	e.caddy.Kill()
	e.poll("/readyz to fail", 10*time.Second, func() (bool, error) {
		status, _ := e.health("/readyz")
		return status == http.StatusServiceUnavailable, nil
	})
	status, body := e.health("/readyz")
	if status != http.StatusServiceUnavailable || !containsLine(body, "caddy: ") {
		t.Errorf("/readyz with Caddy down = %d %q, want 503 naming the caddy check", status, body)
	}
	if status, body := e.health("/healthz"); status != http.StatusOK {
		t.Errorf("/healthz with Caddy down = %d %q, want 200", status, body)
	}

	if err := e.caddy.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.waitReady()
}

func TestReadyzBeforeCachesSync(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}

	// a user without RBAC: the router's lists are forbidden, so its caches
	// never sync
	user, err := cp.AddUser("no-rights", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, client: cp.Clientset, ns: "default"}
	caddy, err := testbed.StartCaddy(t.Context(), testbed.CaddyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	healthAddr, err := testbed.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	e.healthURL = "http://" + healthAddr
	e.args = []string{
		"--namespace=default", "--base-domain=" + baseDomain, "--kubeconfig=" + user,
		"--caddy-admin=" + caddy.AdminURL, "--health-addr=" + healthAddr, "--webhook-port=0",
	}
	e.startRouter()

	e.poll("/healthz", 30*time.Second, func() (bool, error) {
		status, _ := e.health("/healthz")
		return status == http.StatusOK, nil
	})
	// give the informers time to try and fail
	time.Sleep(time.Second)
	status, body := e.health("/readyz")
	if status != http.StatusServiceUnavailable || !containsLine(body, "caches: ") {
		t.Errorf("/readyz before the caches sync = %d %q, want 503 naming the caches check", status, body)
	}
}

// waitEveryPodAnswers sends requests through Caddy until each Ready pod of
// the Deployment name has responded to one.
func (e *env) waitEveryPodAnswers(name string) {
	e.t.Helper()
	seen := map[string]bool{}
	e.poll("every pod of "+name+" to answer through Caddy", 30*time.Second, func() (bool, error) {
		if status, body := e.get(host(name)); status == http.StatusOK {
			seen[strings.TrimSpace(body)] = true
		}
		for _, pod := range e.readyPods(name) {
			if !seen[pod] {
				return false, nil
			}
		}
		return true, nil
	})
}

// upstreams returns the dial addresses of the Deployment's route in Caddy.
func (e *env) upstreams(name string) []string {
	routes, _ := e.routes()
	for _, r := range routes {
		if r["@id"] != e.routeID(name) {
			continue
		}
		var dials []string
		for _, h := range r["handle"].([]any) {
			handler := h.(map[string]any)
			ups, _ := handler["upstreams"].([]any)
			for _, u := range ups {
				dials = append(dials, u.(map[string]any)["dial"].(string))
			}
		}
		return dials
	}

	return nil
}

// dial returns the dial address of a pod at port 8080.
func (e *env) dial(pod string) string {
	p, err := e.client.CoreV1().Pods(e.ns).Get(e.t.Context(), pod, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}

	return p.Status.PodIP + ":8080"
}

func containsLine(body, prefix string) bool {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}

	return false
}

func TestBackfillAndEvents(t *testing.T) {
	// without the webhook, the reconciler stamps the annotation itself
	e := newEnv(t, routerOptions{noWebhook: true})
	ctx := t.Context()

	e.createDeployment("late", 1, 8080, "8080")
	e.createDeployment("broken", 1, 8080, "8089/tcp")
	e.waitServedBy(host("late"), 60*time.Second)

	e.poll("the annotation backfill", 30*time.Second, func() (bool, error) {
		d, err := e.client.AppsV1().Deployments(e.ns).Get(ctx, "late", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Annotations[routeURLAnnotation] == host("late"), nil
	})

	e.poll("a RouteCreated event on late", 30*time.Second, func() (bool, error) {
		return e.hasEvent("late", corev1.EventTypeNormal, "RouteCreated", host("late")), nil
	})
	e.poll("an InvalidPort warning on broken", 30*time.Second, func() (bool, error) {
		return e.hasEvent("broken", corev1.EventTypeWarning, "InvalidPort", `"8089/tcp"`), nil
	})
	if status, _ := e.get(host("broken")); status != http.StatusNotFound {
		t.Errorf("GET %s = %d, want 404: a Deployment with an invalid port gets no route", host("broken"), status)
	}
}

// hasEvent reports whether the Deployment name has an Event of the type and
// reason whose message contains text.
func (e *env) hasEvent(name, eventType, reason, text string) bool {
	events, err := e.client.CoreV1().Events(e.ns).List(e.t.Context(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Deployment,involvedObject.name=" + name,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range events.Items {
		if ev.Type == eventType && ev.Reason == reason && strings.Contains(ev.Message, text) {
			return true
		}
	}

	return false
}

func TestInvalidPortKeepsRoute(t *testing.T) {
	e := newEnv(t, routerOptions{noWebhook: true})
	ctx := t.Context()

	e.createDeployment("steadfast", 1, 8080, "8080")
	want := e.waitServedBy(host("steadfast"), 60*time.Second)
	setPort := func(value string) {
		t.Helper()
		patch := []byte(`{"metadata":{"annotations":{"gitspace.caddy.default.port":"` + value + `"}}}`)
		if _, err := e.client.AppsV1().Deployments(e.ns).Patch(ctx, "steadfast", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// a bad edit while the router runs keeps the route at the old port
	setPort("70000")
	e.poll("an InvalidPort warning", 30*time.Second, func() (bool, error) {
		return e.hasEvent("steadfast", corev1.EventTypeWarning, "InvalidPort", `"70000"`), nil
	})
	if got := e.waitServedBy(host("steadfast"), 5*time.Second); got != want {
		t.Errorf("after the bad edit answered by %q, want %q", got, want)
	}

	// a bad edit while the router is down keeps it too
	if err := e.router.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	setPort("http-typo")
	e.startRouter()
	e.waitReady()
	// let a drift check pass, which would remove the route if it were lost
	time.Sleep(1500 * time.Millisecond)
	if got := e.waitServedBy(host("steadfast"), 5*time.Second); got != want {
		t.Errorf("after a restart with a bad port answered by %q, want %q", got, want)
	}
	if ups := e.upstreams("steadfast"); len(ups) != 1 || !strings.HasSuffix(ups[0], ":8080") {
		t.Errorf("upstreams = %v, want one at the old port 8080", ups)
	}
}

// subrouteConfig has an operator route before the router's subroute and a
// catch-all after it.
const subrouteConfig = `{
  "admin": {"listen": "ADMIN_LISTEN", "config": {"persist": false}},
  "apps": {"http": {"servers": {"srv0": {
    "listen": ["HTTP_LISTEN"],
    "automatic_https": {"disable": true},
    "routes": [
      {"@id": "operator-headers", "handle": [{"handler": "headers", "response": {"set": {"X-Operator": ["yes"]}}}]},
      {"handle": [{"handler": "subroute", "@id": "workspaces", "routes": []}]},
      {"@id": "catch-all", "handle": [{"handler": "static_response", "status_code": 404, "body": "no route for this host\n"}]}
    ]
  }}}}
}`

func TestSubrouteKeepsOperatorRoutes(t *testing.T) {
	caddy, err := testbed.StartCaddy(t.Context(), testbed.CaddyOptions{Config: []byte(subrouteConfig)})
	if testbed.SkipIfMissing(err) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	e := newEnv(t, routerOptions{caddy: caddy, noWebhook: true, extraArgs: []string{"--caddy-subroute-id=workspaces"}})

	e.createDeployment("nested", 1, 8080, "8080")
	body := e.waitServedBy(host("nested"), 60*time.Second)
	if pods := e.readyPods("nested"); len(pods) != 1 || body != pods[0] {
		t.Errorf("answered by %q, want the Ready pod %v", body, pods)
	}

	// the operator's routes are where they were
	ids := e.routeIDs()
	if len(ids) != 3 || ids[0] != "operator-headers" || ids[2] != testbed.CatchAllID {
		t.Errorf("server routes = %v, want the operator's three routes unchanged", ids)
	}
	status, _, raw, err := caddy.Admin(t.Context(), http.MethodGet, "/id/workspaces/routes", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("reading the subroute: %d %v", status, err)
	}
	if !strings.Contains(string(raw), e.routeID("nested")) {
		t.Errorf("subroute routes %s do not contain %s", raw, e.routeID("nested"))
	}

	// other hosts still reach the catch-all after the subroute
	if status, got := e.get(host("elsewhere")); status != http.StatusNotFound || got != testbed.CatchAllBody {
		t.Errorf("GET %s = %d %q, want the catch-all 404", host("elsewhere"), status, got)
	}
}

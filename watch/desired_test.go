package watch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// newRouteInput returns the input of desiredRoute for d and pods with the
// test Namer, the default route id prefix and the default port.
func newRouteInput(tb testing.TB, d *appsv1.Deployment, pods ...*corev1.Pod) routeInput {
	tb.Helper()

	return routeInput{
		deployment:  d,
		pods:        pods,
		namer:       newTestNamer(tb),
		idPrefix:    routing.DefaultRouteIDPrefix,
		defaultPort: routing.DefaultPort,
	}
}

func TestDesiredRouteClaim(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := newDeployment("web", portAnnotation("8080"))
	d.CreationTimestamp = metav1.NewTime(created)

	res, err := desiredRoute(newRouteInput(t, d, newPod("web", "web-1", "10.0.0.1")))
	if err != nil {
		t.Fatalf("desiredRoute() error = %v", err)
	}

	if res.claim.route.Host != "web.example.test" {
		t.Errorf("host = %q, want %q", res.claim.route.Host, "web.example.test")
	}
	if res.claim.route.ID != "k8s-router.ns.web" {
		t.Errorf("route id = %q, want %q", res.claim.route.ID, "k8s-router.ns.web")
	}
	if res.claim.key != "ns/web" {
		t.Errorf("claim key = %q, want %q", res.claim.key, "ns/web")
	}
	if !res.claim.created.Equal(created) {
		t.Errorf("claim created = %v, want %v", res.claim.created, created)
	}
	if res.claim.port != 8080 {
		t.Errorf("claim port = %d, want 8080", res.claim.port)
	}
	if want := []string{"10.0.0.1:8080"}; !slices.Equal(res.claim.route.Upstreams, want) {
		t.Errorf("upstreams = %q, want %q", res.claim.route.Upstreams, want)
	}
}

func TestDesiredRouteHostFromNamer(t *testing.T) {
	namer, err := routing.NewNamer("Apps.Example.Test.", "{name}-{namespace}")
	if err != nil {
		t.Fatal(err)
	}
	in := newRouteInput(t, newDeployment("web", portAnnotation("8080")))
	in.namer = namer

	res, err := desiredRoute(in)
	if err != nil {
		t.Fatalf("desiredRoute() error = %v", err)
	}

	if res.claim.route.Host != "web-ns.apps.example.test" {
		t.Errorf("host = %q, want %q", res.claim.route.Host, "web-ns.apps.example.test")
	}
}

func TestDesiredRoutePort(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		wantPort    int32
		wantWarning bool
	}{
		{name: "missing", annotations: nil, wantPort: routing.DefaultPort, wantWarning: true},
		{name: "other annotations only", annotations: map[string]string{"team": "a"}, wantPort: routing.DefaultPort, wantWarning: true},
		{name: "number", annotations: portAnnotation("8080"), wantPort: 8080},
		{name: "container port name", annotations: portAnnotation(testPortName), wantPort: testPortNumber},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeployment("web", tt.annotations)

			res, err := desiredRoute(newRouteInput(t, d, newPod("web", "web-1", "10.0.0.1")))
			if err != nil {
				t.Fatalf("desiredRoute() error = %v", err)
			}

			if res.claim.port != tt.wantPort {
				t.Errorf("port = %d, want %d", res.claim.port, tt.wantPort)
			}
			want := []string{fmt.Sprintf("10.0.0.1:%d", tt.wantPort)}
			if !slices.Equal(res.claim.route.Upstreams, want) {
				t.Errorf("upstreams = %q, want %q", res.claim.route.Upstreams, want)
			}
			if !tt.wantWarning {
				if res.warning != "" {
					t.Errorf("warning = %q, want none", res.warning)
				}
				return
			}
			if !strings.Contains(res.warning, routing.AnnotationPort) {
				t.Errorf("warning = %q, want it to name the annotation %s", res.warning, routing.AnnotationPort)
			}
			if !strings.Contains(res.warning, fmt.Sprint(routing.DefaultPort)) {
				t.Errorf("warning = %q, want it to name the default port %d", res.warning, routing.DefaultPort)
			}
		})
	}
}

func TestDesiredRouteDefaultPortOption(t *testing.T) {
	in := newRouteInput(t, newDeployment("web", nil), newPod("web", "web-1", "10.0.0.1"))
	in.defaultPort = 9000

	res, err := desiredRoute(in)
	if err != nil {
		t.Fatalf("desiredRoute() error = %v", err)
	}

	if res.claim.port != 9000 {
		t.Errorf("port = %d, want 9000", res.claim.port)
	}
	if !strings.Contains(res.warning, "9000") {
		t.Errorf("warning = %q, want it to name the default port 9000", res.warning)
	}
}

func TestDesiredRouteInvalidPort(t *testing.T) {
	for _, value := range []string{"http", "0", "70000", " 8089", "8089/tcp", "-1", ""} {
		t.Run(fmt.Sprintf("%q", value), func(t *testing.T) {
			d := newDeployment("web", portAnnotation(value))

			res, err := desiredRoute(newRouteInput(t, d, newPod("web", "web-1", "10.0.0.1")))

			if !errors.Is(err, errInvalidPort) {
				t.Fatalf("error = %v, want errInvalidPort", err)
			}
			if errors.Is(err, errInvalidName) {
				t.Errorf("error = %v, want it not to be errInvalidName", err)
			}
			var portErr *routing.PortError
			if !errors.As(err, &portErr) {
				t.Errorf("error %q does not wrap a *routing.PortError", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", value)) {
				t.Errorf("error = %q, want it to name the value %q", err, value)
			}
			if len(res.claim.route.Upstreams) != 0 {
				t.Errorf("upstreams = %q, want none", res.claim.route.Upstreams)
			}
		})
	}
}

func TestDesiredRouteInvalidName(t *testing.T) {
	for _, name := range []string{"my.app", strings.Repeat("a", 64), "Web"} {
		t.Run(name, func(t *testing.T) {
			d := newDeployment(name, portAnnotation("8080"))

			_, err := desiredRoute(newRouteInput(t, d, newPod(name, name+"-1", "10.0.0.1")))

			if !errors.Is(err, errInvalidName) {
				t.Fatalf("error = %v, want errInvalidName", err)
			}
			var hostErr *routing.HostError
			if !errors.As(err, &hostErr) {
				t.Errorf("error %q does not wrap a *routing.HostError", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
				t.Errorf("error = %q, want it to name the deployment name %q", err, name)
			}
		})
	}
}

func TestDesiredRouteUpstreams(t *testing.T) {
	deleted := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

	tests := []struct {
		name    string
		family  corev1.IPFamily
		pods    []*corev1.Pod
		want    []string
		skipped map[string]string
	}{
		{
			name: "ready pod",
			pods: []*corev1.Pod{newPod("web", "a", "10.0.0.1")},
			want: []string{"10.0.0.1:8080"},
		},
		{
			name:    "ready false",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { setReady(p, corev1.ConditionFalse) })},
			skipped: map[string]string{"a": "not Ready"},
		},
		{
			name:    "ready unknown",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { setReady(p, corev1.ConditionUnknown) })},
			skipped: map[string]string{"a": "not Ready"},
		},
		{
			name:    "no ready condition",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { p.Status.Conditions = nil })},
			skipped: map[string]string{"a": "not Ready"},
		},
		{
			name:    "terminating",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { p.DeletionTimestamp = &deleted })},
			skipped: map[string]string{"a": "terminating"},
		},
		{
			name:    "succeeded",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })},
			skipped: map[string]string{"a": "phase Succeeded"},
		},
		{
			name:    "failed",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })},
			skipped: map[string]string{"a": "phase Failed"},
		},
		{
			name:    "no ip",
			pods:    []*corev1.Pod{newPod("web", "a")},
			skipped: map[string]string{"a": "no pod IP"},
		},
		{
			name:    "unparsable ip",
			pods:    []*corev1.Pod{newPod("web", "a", "not-an-ip")},
			skipped: map[string]string{"a": "no pod IP"},
		},
		{
			name: "pod ip without pod ips",
			pods: []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { p.Status.PodIPs = nil })},
			want: []string{"10.0.0.1:8080"},
		},
		{
			name:    "labels do not match selector",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { p.Labels["app"] = "other" })},
			skipped: map[string]string{"a": "labels do not match"},
		},
		{
			name:    "no labels",
			pods:    []*corev1.Pod{withPod(newPod("web", "a", "10.0.0.1"), func(p *corev1.Pod) { p.Labels = nil })},
			skipped: map[string]string{"a": "labels do not match"},
		},
		{
			name: "ipv6",
			pods: []*corev1.Pod{newPod("web", "a", "fd00::1")},
			want: []string{"[fd00::1]:8080"},
		},
		{
			name: "ipv6 written long",
			pods: []*corev1.Pod{newPod("web", "a", "fd00:0:0:0:0:0:0:1")},
			want: []string{"[fd00::1]:8080"},
		},
		{
			name: "dual stack primary ipv4",
			pods: []*corev1.Pod{newPod("web", "a", "10.0.0.1", "fd00::1")},
			want: []string{"10.0.0.1:8080"},
		},
		{
			name: "dual stack primary ipv6",
			pods: []*corev1.Pod{newPod("web", "a", "fd00::1", "10.0.0.1")},
			want: []string{"[fd00::1]:8080"},
		},
		{
			name:   "dual stack family ipv4",
			family: corev1.IPv4Protocol,
			pods:   []*corev1.Pod{newPod("web", "a", "fd00::1", "10.0.0.1")},
			want:   []string{"10.0.0.1:8080"},
		},
		{
			name:   "dual stack family ipv6",
			family: corev1.IPv6Protocol,
			pods:   []*corev1.Pod{newPod("web", "a", "10.0.0.1", "fd00::1")},
			want:   []string{"[fd00::1]:8080"},
		},
		{
			name:    "ipv6 only family ipv4",
			family:  corev1.IPv4Protocol,
			pods:    []*corev1.Pod{newPod("web", "a", "fd00::1")},
			skipped: map[string]string{"a": "no IPv4 pod IP"},
		},
		{
			name:    "ipv4 only family ipv6",
			family:  corev1.IPv6Protocol,
			pods:    []*corev1.Pod{newPod("web", "a", "10.0.0.1")},
			skipped: map[string]string{"a": "no IPv6 pod IP"},
		},
		{
			name: "host network",
			pods: []*corev1.Pod{withPod(newPod("web", "a", "192.168.1.10"), func(p *corev1.Pod) {
				p.Spec.HostNetwork = true
				p.Status.HostIP = "192.168.1.10"
			})},
			want: []string{"192.168.1.10:8080"},
		},
		{
			name: "same ip twice",
			pods: []*corev1.Pod{
				withPod(newPod("web", "a", "192.168.1.10"), func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
				withPod(newPod("web", "b", "192.168.1.10"), func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
			},
			want: []string{"192.168.1.10:8080"},
		},
		{
			name: "mixed",
			pods: []*corev1.Pod{
				newPod("web", "a", "10.0.0.3"),
				withPod(newPod("web", "b", "10.0.0.2"), func(p *corev1.Pod) { setReady(p, corev1.ConditionFalse) }),
				newPod("web", "c", "10.0.0.1"),
				withPod(newPod("web", "d", "10.0.0.4"), func(p *corev1.Pod) { p.DeletionTimestamp = &deleted }),
			},
			want:    []string{"10.0.0.1:8080", "10.0.0.3:8080"},
			skipped: map[string]string{"b": "not Ready", "d": "terminating"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newRouteInput(t, newDeployment("web", portAnnotation("8080")), tt.pods...)
			in.ipFamily = tt.family

			res, err := desiredRoute(in)
			if err != nil {
				t.Fatalf("desiredRoute() error = %v", err)
			}

			if !slices.Equal(res.claim.route.Upstreams, tt.want) {
				t.Errorf("upstreams = %q, want %q", res.claim.route.Upstreams, tt.want)
			}
			if len(res.skipped) != len(tt.skipped) {
				t.Errorf("skipped = %q, want %d pods skipped", res.skipped, len(tt.skipped))
			}
			for pod, reason := range tt.skipped {
				if !strings.Contains(res.skipped[pod], reason) {
					t.Errorf("skip reason of pod %s = %q, want it to contain %q", pod, res.skipped[pod], reason)
				}
			}
		})
	}
}

func TestDesiredRouteNoPods(t *testing.T) {
	res, err := desiredRoute(newRouteInput(t, newDeployment("web", portAnnotation("8080"))))
	if err != nil {
		t.Fatalf("desiredRoute() error = %v", err)
	}

	if len(res.claim.route.Upstreams) != 0 {
		t.Errorf("upstreams = %q, want none", res.claim.route.Upstreams)
	}
	if res.claim.route.Host != "web.example.test" {
		t.Errorf("host = %q, want the claim to keep its host", res.claim.route.Host)
	}
}

func TestDesiredRoutePodOrder(t *testing.T) {
	pods := []*corev1.Pod{
		newPod("web", "a", "10.0.0.10"),
		newPod("web", "b", "fd00::2"),
		newPod("web", "c", "10.0.0.2"),
		withPod(newPod("web", "d", "10.0.0.2"), func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
		newPod("web", "e", "10.0.0.1"),
	}
	want := []string{"10.0.0.10:8080", "10.0.0.1:8080", "10.0.0.2:8080", "[fd00::2]:8080"}
	d := newDeployment("web", portAnnotation("8080"))

	first, err := desiredRoute(newRouteInput(t, d, pods...))
	if err != nil {
		t.Fatalf("desiredRoute() error = %v", err)
	}
	if !slices.Equal(first.claim.route.Upstreams, want) {
		t.Fatalf("upstreams = %q, want %q", first.claim.route.Upstreams, want)
	}

	// every rotation and the reverse order give the same route
	orders := [][]*corev1.Pod{slices.Clone(pods)}
	slices.Reverse(orders[0])
	for i := 1; i < len(pods); i++ {
		orders = append(orders, append(slices.Clone(pods[i:]), pods[:i]...))
	}
	for _, order := range orders {
		res, err := desiredRoute(newRouteInput(t, d, order...))
		if err != nil {
			t.Fatalf("desiredRoute() error = %v", err)
		}
		if !res.claim.route.Equal(first.claim.route) {
			t.Errorf("route for pods %s = %+v, want %+v", podNames(order), res.claim.route, first.claim.route)
		}
	}
}

// podNames returns the names of pods, in order.
func podNames(pods []*corev1.Pod) []string {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Name
	}

	return names
}

func TestRouteEqual(t *testing.T) {
	base := testRoute("web", "10.0.0.1:8080", "10.0.0.2:8080")

	tests := []struct {
		name  string
		other Route
		want  bool
	}{
		{name: "same", other: testRoute("web", "10.0.0.1:8080", "10.0.0.2:8080"), want: true},
		{name: "other id", other: Route{ID: "k8s-router.ns.other", Host: base.Host, Upstreams: base.Upstreams}},
		{name: "other host", other: Route{ID: base.ID, Host: "other.example.test", Upstreams: base.Upstreams}},
		{name: "fewer upstreams", other: testRoute("web", "10.0.0.1:8080")},
		{name: "other order", other: testRoute("web", "10.0.0.2:8080", "10.0.0.1:8080")},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := base.Equal(tt.other); got != tt.want {
				t.Errorf("Equal(%+v) = %t, want %t", tt.other, got, tt.want)
			}
		})
	}
}

// newClaim returns a claim of the Deployment namespace/name for host,
// created at the given minute of a fixed day.
func newClaim(namespace, name, host string, minute int, upstreams ...string) claim {
	return claim{
		key:     namespace + "/" + name,
		created: time.Date(2026, 1, 2, 3, minute, 0, 0, time.UTC),
		port:    8080,
		route: Route{
			ID:        routing.RouteID(routing.DefaultRouteIDPrefix, namespace, name),
			Host:      host,
			Upstreams: upstreams,
		},
	}
}

// seenAs returns c as first seen at position seen.
func seenAs(c claim, seen uint64) claim {
	c.seen = seen
	return c
}

// claimsOf returns claims keyed by their key.
func claimsOf(claims ...claim) map[string]claim {
	out := make(map[string]claim, len(claims))
	for _, c := range claims {
		out[c.key] = c
	}

	return out
}

func TestResolveClaims(t *testing.T) {
	tests := []struct {
		name       string
		claims     map[string]claim
		wantRoutes []string
		wantLosers map[string]string
		holders    map[string]string
	}{
		{
			name:       "empty",
			claims:     claimsOf(),
			wantLosers: map[string]string{},
		},
		{
			name: "distinct hosts",
			claims: claimsOf(
				newClaim("b", "web", "web-b.example.test", 1, "10.0.0.2:8080"),
				newClaim("a", "web", "web-a.example.test", 2, "10.0.0.1:8080"),
			),
			wantRoutes: []string{"k8s-router.a.web", "k8s-router.b.web"},
			wantLosers: map[string]string{},
		},
		{
			name: "oldest keeps shared host",
			claims: claimsOf(
				newClaim("a", "web", "web.example.test", 5, "10.0.0.1:8080"),
				newClaim("b", "web", "web.example.test", 1, "10.0.0.2:8080"),
				newClaim("c", "web", "web.example.test", 3, "10.0.0.3:8080"),
			),
			wantRoutes: []string{"k8s-router.b.web"},
			wantLosers: map[string]string{"a/web": "b/web", "c/web": "b/web"},
		},
		{
			name: "tie broken by key",
			claims: claimsOf(
				newClaim("b", "web", "web.example.test", 1, "10.0.0.2:8080"),
				newClaim("a", "web", "web.example.test", 1, "10.0.0.1:8080"),
			),
			wantRoutes: []string{"k8s-router.a.web"},
			wantLosers: map[string]string{"b/web": "a/web"},
		},
		{
			name: "tie kept by holder",
			claims: claimsOf(
				newClaim("b", "web", "web.example.test", 1, "10.0.0.2:8080"),
				newClaim("a", "web", "web.example.test", 1, "10.0.0.1:8080"),
			),
			holders:    map[string]string{"web.example.test": "b/web"},
			wantRoutes: []string{"k8s-router.b.web"},
			wantLosers: map[string]string{"a/web": "b/web"},
		},
		{
			name: "tie broken by first seen",
			claims: claimsOf(
				seenAs(newClaim("b", "web", "web.example.test", 1, "10.0.0.2:8080"), 1),
				seenAs(newClaim("a", "web", "web.example.test", 1, "10.0.0.1:8080"), 2),
			),
			wantRoutes: []string{"k8s-router.b.web"},
			wantLosers: map[string]string{"a/web": "b/web"},
		},
		{
			name: "holder loses to older",
			claims: claimsOf(
				newClaim("b", "web", "web.example.test", 2, "10.0.0.2:8080"),
				newClaim("a", "web", "web.example.test", 1, "10.0.0.1:8080"),
			),
			holders:    map[string]string{"web.example.test": "b/web"},
			wantRoutes: []string{"k8s-router.a.web"},
			wantLosers: map[string]string{"b/web": "a/web"},
		},
		{
			name: "winner without upstreams holds host",
			claims: claimsOf(
				newClaim("a", "web", "web.example.test", 1),
				newClaim("b", "web", "web.example.test", 2, "10.0.0.2:8080"),
			),
			wantLosers: map[string]string{"b/web": "a/web"},
		},
		{
			name: "claim without upstreams",
			claims: claimsOf(
				newClaim("ns", "idle", "idle.example.test", 1),
				newClaim("ns", "web", "web.example.test", 1, "10.0.0.1:8080"),
			),
			wantRoutes: []string{"k8s-router.ns.web"},
			wantLosers: map[string]string{},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes, losers, winners := resolveClaims(tt.claims, tt.holders)

			ids := make([]string, len(routes))
			for i, r := range routes {
				ids[i] = r.ID
			}
			if !slices.Equal(ids, tt.wantRoutes) {
				t.Errorf("route ids = %q, want %q", ids, tt.wantRoutes)
			}
			for _, r := range routes {
				if want := tt.claims[routeKey(t, r)].route; !r.Equal(want) {
					t.Errorf("route %s = %+v, want the claim's route %+v", r.ID, r, want)
				}
			}
			if !maps.Equal(losers, tt.wantLosers) {
				t.Errorf("losers = %v, want %v", losers, tt.wantLosers)
			}
			for loser, winner := range losers {
				host := tt.claims[loser].route.Host
				if winners[host] != winner {
					t.Errorf("winners[%s] = %q, want %q", host, winners[host], winner)
				}
			}
		})
	}
}

// routeKey returns the Deployment key of a route built with the default
// route id prefix.
func routeKey(tb testing.TB, r Route) string {
	tb.Helper()

	namespace, name, ok := routing.ParseRouteID(routing.DefaultRouteIDPrefix, r.ID)
	if !ok {
		tb.Fatalf("route id %q does not parse", r.ID)
	}

	return namespace + "/" + name
}

func TestResolveClaimsSortedByID(t *testing.T) {
	claims := map[string]claim{}
	for i := range 50 {
		name := fmt.Sprintf("web-%02d", (i*37)%50)
		c := newClaim("ns", name, name+".example.test", i, fmt.Sprintf("10.0.0.%d:8080", i+1))
		claims[c.key] = c
	}

	for range 5 {
		routes, _, _ := resolveClaims(claims, nil)

		if len(routes) != 50 {
			t.Fatalf("got %d routes, want 50", len(routes))
		}
		if !slices.IsSortedFunc(routes, func(a, b Route) int { return strings.Compare(a.ID, b.ID) }) {
			t.Errorf("routes are not sorted by id: %v", routes)
		}
	}
}

func TestDesiredRouteNamedPortPerPod(t *testing.T) {
	namer, err := routing.NewNamer("example.test", routing.DefaultHostTemplate)
	if err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Annotations: map[string]string{routing.AnnotationPort: "ide"}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "workspace", Ports: []corev1.ContainerPort{{Name: "ide", ContainerPort: 3001}},
			}}}},
		},
	}
	pod := func(name, ip string, port int32) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "web"}},
			Status: corev1.PodStatus{
				Phase:      corev1.PodRunning,
				PodIP:      ip,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			},
		}
		if port != 0 {
			p.Spec.Containers = []corev1.Container{{Name: "workspace", Ports: []corev1.ContainerPort{{Name: "ide", ContainerPort: port}}}}
		}
		return p
	}

	// during a rollout that renumbers the port, each pod keeps its own
	res, err := desiredRoute(routeInput{
		deployment: d,
		pods:       []*corev1.Pod{pod("old", "10.0.0.1", 3000), pod("new", "10.0.0.2", 3001), pod("bare", "10.0.0.3", 0)},
		namer:      namer,
		idPrefix:   routing.DefaultRouteIDPrefix,
	})
	if err != nil {
		t.Fatal(err)
	}

	want := []string{"10.0.0.1:3000", "10.0.0.2:3001", "10.0.0.3:3001"}
	if !slices.Equal(res.claim.route.Upstreams, want) {
		t.Errorf("upstreams = %v, want %v (old pod on its own port, a pod without ports on the template's)", res.claim.route.Upstreams, want)
	}
}

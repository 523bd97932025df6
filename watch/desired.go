package watch

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// Route is one route the router wants in Caddy: the Deployment it serves,
// its Caddy @id, the host it matches and the upstream dial addresses.
type Route struct {
	// ID is the Caddy @id, built by [routing.RouteID].
	ID string
	// Host is the host the route matches.
	Host string
	// Upstreams are "ip:port" dial addresses, IPv6 in brackets, sorted.
	Upstreams []string
}

// Equal reports whether r and other would produce the same Caddy route.
func (r Route) Equal(other Route) bool {
	return r.ID == other.ID && r.Host == other.Host && slices.Equal(r.Upstreams, other.Upstreams)
}

// claim is one Deployment's request to the router: a host, and the route to
// it. A claim with no upstreams holds its host but gets no route, so the host
// falls through to Caddy's catch-all.
type claim struct {
	key     string
	created time.Time
	// port is the upstream port the route was computed with.
	port int32
	// seen orders claims by when the router first saw their Deployment.
	seen  uint64
	route Route
}

// routeInput is the input of desiredRoute for one Deployment.
type routeInput struct {
	deployment *appsv1.Deployment
	pods       []*corev1.Pod
	namer      *routing.Namer
	idPrefix   string
	// port is used when the Deployment has no port annotation.
	defaultPort int32
	// ipFamily selects the address of dual-stack pods; "" takes the pod's
	// primary IP.
	ipFamily corev1.IPFamily
}

// routeResult is the outcome of desiredRoute. A nil err with a non-nil
// warning means a route was computed with a caveat the user should see.
type routeResult struct {
	claim   claim
	warning string
	// skipped lists pods left out of the upstreams, with the reason, for
	// debug logging.
	skipped map[string]string
}

// Sentinel errors that classify why a Deployment gets no route. Each is
// wrapped with the detail that names the offending value.
var (
	// errInvalidName: the Deployment's name cannot form a host.
	errInvalidName = errors.New("invalid deployment name")
	// errInvalidPort: the port annotation is invalid.
	errInvalidPort = errors.New("invalid port annotation")
)

// desiredRoute computes the claim of one Deployment from its pods. It has no
// side effects. It returns errInvalidName or errInvalidPort, wrapped, for
// input the user must fix.
func desiredRoute(in routeInput) (routeResult, error) {
	d := in.deployment
	res := routeResult{skipped: map[string]string{}}

	// the host
	host, err := in.namer.Host(d.Namespace, d.Name)
	if err != nil {
		return res, fmt.Errorf("%w: %w", errInvalidName, err)
	}

	// the port
	value, annotated := d.Annotations[routing.AnnotationPort]
	port := in.defaultPort
	if annotated {
		port, err = routing.ParsePort(value, &d.Spec.Template.Spec)
		if err != nil {
			return res, fmt.Errorf("%w: %w", errInvalidPort, err)
		}
	} else {
		res.warning = fmt.Sprintf("annotation %s is missing, using the default port %d; set it to a port number or a container port name",
			routing.AnnotationPort, in.defaultPort)
	}

	// the upstreams
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		// The API server validates selectors, so this is not expected.
		selector = labels.Nothing()
	}
	upstreams := make([]string, 0, len(in.pods))
	for _, pod := range in.pods {
		ip, reason := upstreamIP(pod, in.ipFamily)
		if reason == "" && !selector.Matches(labels.Set(pod.Labels)) {
			reason = "labels do not match the deployment selector"
		}
		if reason != "" {
			res.skipped[pod.Name] = reason
			continue
		}
		upstreams = append(upstreams, net.JoinHostPort(ip, strconv.Itoa(int(podPort(pod, value, port)))))
	}
	sort.Strings(upstreams)
	upstreams = slices.Compact(upstreams)

	res.claim = claim{
		key:     d.Namespace + "/" + d.Name,
		created: d.CreationTimestamp.Time,
		port:    port,
		route: Route{
			ID:        routing.RouteID(in.idPrefix, d.Namespace, d.Name),
			Host:      host,
			Upstreams: upstreams,
		},
	}

	return res, nil
}

// podPort returns the port to dial on pod. A port annotation that names a
// container port is looked up in the pod's own containers, because during a
// rollout the old pods may declare that name with another number than the
// template. Otherwise, or when the pod does not declare the name, it returns
// templatePort.
func podPort(pod *corev1.Pod, annotation string, templatePort int32) int32 {
	if annotation == "" || len(pod.Spec.Containers) == 0 || isDecimal(annotation) {
		return templatePort
	}

	port, err := routing.ParsePort(annotation, &pod.Spec)
	if err != nil {
		return templatePort
	}

	return port
}

func isDecimal(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}

	return s != ""
}

// upstreamIP returns the address to dial for pod, or a reason why the pod
// is not an upstream: it is not Ready, it is terminating, it has finished,
// or it has no IP of the wanted family.
func upstreamIP(pod *corev1.Pod, family corev1.IPFamily) (string, string) {
	switch {
	case pod.DeletionTimestamp != nil:
		return "", "terminating"
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return "", "phase " + string(pod.Status.Phase)
	case !isPodReady(pod):
		return "", "not Ready"
	}

	ip := podIP(pod, family)
	if ip == "" {
		if family == "" {
			return "", "no pod IP"
		}
		return "", "no " + string(family) + " pod IP"
	}

	return ip, ""
}

// podIP returns the pod's address of the given family, or its primary
// address when family is empty. Addresses that do not parse are ignored.
func podIP(pod *corev1.Pod, family corev1.IPFamily) string {
	candidates := make([]string, 0, len(pod.Status.PodIPs)+1)
	for _, p := range pod.Status.PodIPs {
		candidates = append(candidates, p.IP)
	}
	if len(candidates) == 0 && pod.Status.PodIP != "" {
		candidates = append(candidates, pod.Status.PodIP)
	}

	for _, candidate := range candidates {
		ip := net.ParseIP(candidate)
		if ip == nil {
			continue
		}
		isV4 := ip.To4() != nil
		if family == "" || (family == corev1.IPv4Protocol && isV4) || (family == corev1.IPv6Protocol && !isV4) {
			return ip.String()
		}
	}

	return ""
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}

	return false
}

// resolveClaims turns claims into the routes to write. When several claims
// want the same host, the oldest Deployment keeps it and the others are
// returned as losers, keyed by their key with the winner's key as value.
// holders maps each host to the key of the Deployment that held it before,
// and winners returns the same for this resolution. Claims without upstreams
// get no route but still hold their host. Routes are sorted by ID.
func resolveClaims(claims map[string]claim, holders map[string]string) (routes []Route, losers, winners map[string]string) {
	byHost := make(map[string][]claim, len(claims))
	for _, c := range claims {
		byHost[c.route.Host] = append(byHost[c.route.Host], c)
	}

	losers = map[string]string{}
	winners = make(map[string]string, len(byHost))
	routes = make([]Route, 0, len(byHost))
	for host, contenders := range byHost {
		winner := contenders[0]
		for _, c := range contenders[1:] {
			if precedes(c, winner, holders[host]) {
				winner = c
			}
		}
		winners[host] = winner.key
		for _, c := range contenders {
			if c.key != winner.key {
				losers[c.key] = winner.key
			}
		}

		if len(winner.route.Upstreams) > 0 {
			routes = append(routes, winner.route)
		}
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].ID < routes[j].ID })

	return routes, losers, winners
}

// precedes reports whether claim a has a better right to a host than b. The
// Deployment created first wins. Creation times have a resolution of one
// second, so on a tie the Deployment that holds the host already wins, then
// the one the router saw first, then the smaller key.
func precedes(a, b claim, holder string) bool {
	switch {
	case !a.created.Equal(b.created):
		return a.created.Before(b.created)
	case a.key == holder || b.key == holder:
		return a.key == holder
	case a.seen != b.seen:
		return a.seen < b.seen
	default:
		return a.key < b.key
	}
}

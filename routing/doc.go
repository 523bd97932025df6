// Package routing holds the rules that the admission webhook and the
// reconciler must apply identically. It defines the annotation keys, turns a
// Deployment name into a host, reads the port annotation, and builds Caddy
// route ids from Deployment keys and parses them back.
//
// The package is pure: it performs no I/O and keeps no state beyond what its
// constructors validate, so both callers reach the same answer for the same
// Deployment.
package routing

const (
	// AnnotationRouteURL is the Deployment annotation that holds the host the
	// router serves the workspace at. The router owns this key: the webhook
	// overwrites any value a client supplies.
	AnnotationRouteURL = "gitspace.caddy.route.url"

	// AnnotationPort is the Deployment annotation that selects the upstream
	// port: a decimal number from 1 to 65535 or the name of a container port
	// declared in the pod template. See [ParsePort].
	AnnotationPort = "gitspace.caddy.default.port"

	// DefaultPort is the upstream port used when a Deployment has no
	// [AnnotationPort] annotation.
	DefaultPort = 8089

	// DefaultHostTemplate is the host template that gives each Deployment
	// the host <name>.<base domain>.
	DefaultHostTemplate = "{name}"

	// DefaultRouteIDPrefix is the prefix of the Caddy @id of every route the
	// router manages. See [RouteID].
	DefaultRouteIDPrefix = "k8s-router."
)

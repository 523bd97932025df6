package watch

// Event reasons the router records on Deployments.
const (
	// ReasonRouteCreated: a route for the Deployment was added to Caddy.
	ReasonRouteCreated = "RouteCreated"
	// ReasonRouteUpdated: the route's host or upstreams changed in Caddy.
	ReasonRouteUpdated = "RouteUpdated"
	// ReasonRouteRemoved: the route was removed, because no pod is Ready.
	ReasonRouteRemoved = "RouteRemoved"
	// ReasonInvalidName: the Deployment's name cannot form a host.
	ReasonInvalidName = "InvalidName"
	// ReasonInvalidPort: the port annotation is invalid.
	ReasonInvalidPort = "InvalidPort"
	// ReasonHostConflict: an older Deployment already has the same host.
	ReasonHostConflict = "HostConflict"
)

// FieldManager is the field manager of the router's annotation patches.
const FieldManager = "caddy-k8s-router"

// eventSource is the component name on the router's Events.
const eventSource = "caddy-k8s-router"

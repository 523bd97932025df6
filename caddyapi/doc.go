// Package caddyapi changes Caddy's routes through its admin API. It works
// on Caddy's JSON config and has no notion of Kubernetes.
//
// Its main operation, [Client.Apply], makes the routes that the router owns
// equal a desired set of [RouteSpec] values. It is idempotent: when the
// owned routes already match, it sends one GET and no write.
//
// # Where the managed routes live
//
// The client manages one routes array in Caddy's config, and there are two
// ways to choose it.
//
// By default the array is the routes of one HTTP server, srv0 unless
// [Config.Server] names another:
//
//	{"apps": {"http": {"servers": {"srv0": {
//	  "listen": [":80"],
//	  "routes": [
//	    {"@id": "catch-all", "handle": [{"handler": "static_response", "status_code": 404}]}
//	  ]
//	}}}}}
//
// The owned routes form one block at the start of the array, before the
// first route that the router does not own. A catch-all route placed last
// therefore stays last and still handles every host without a workspace.
//
// When [Config.SubrouteID] is set, the array is the routes of the subroute
// handler whose @id it names. Operators who need their own routes to run
// first, such as authentication or response headers, put them before the
// subroute route, and their catch-all after it:
//
//	"routes": [
//	  {"handle": [{"handler": "headers", "response": {"set": {"X-Frame-Options": ["DENY"]}}}]},
//	  {"handle": [{"handler": "subroute", "@id": "k8s-router-routes", "routes": []}]},
//	  {"@id": "catch-all", "handle": [{"handler": "static_response", "status_code": 404}]}
//	]
//
// A request whose host matches no owned route leaves the subroute and goes
// on to the routes after it. The subroute id must not start with the
// owned-route prefix.
//
// # Ownership
//
// A route is owned when its @id starts with [Config.IDPrefix], by default
// [DefaultIDPrefix]. Routes without the prefix are never changed, removed or
// reordered among themselves. @id values must be unique across the whole
// Caddy config, so an owned id that is also used elsewhere makes Caddy
// reject the write with [ErrRejected].
//
// # Safety
//
// Each Apply reads the server or subroute together with its Etag, computes
// the new routes array and writes it with one request that carries the Etag
// in If-Match. If another client changed the object in between, Caddy
// responds with 412 and Apply reads again, with backoff. The client never writes
// through /id/ paths, because Caddy v2.11.9 resolves an id to an array index
// before it takes its config lock, so concurrent writes there can hit the
// wrong route.
//
// Each write makes Caddy reload its whole config, which costs about 0.14 ms
// of CPU per route on Caddy v2.11.9, whether one route or the whole array
// changes. A reload closes websockets unless stream_close_delay is set, and
// keeps old upstream transports in memory until their idle connections
// close. [ProxySettings] sets both for every owned route.
//
// Caddy v2.11.9 also replaces its admin server on every config change and
// closes the old one's connections, so the client opens a new connection
// for each request. A read, or a conditional write, that gets no response
// for a reason other than a timeout is repeated with backoff.
//
// Among the Clients of one process, only one Apply per admin URL runs at a
// time. Writes from other processes are caught by If-Match.
//
// # Admin endpoint
//
// [Config.AdminURL] is "http://host:port" or "unix//path/to/admin.sock".
// Over TCP, Caddy responds with 403 unless the Host header, port included, is one
// of its allowed origins: for a loopback admin.listen such as the default
// localhost:2019 these are localhost, 127.0.0.1 and [::1] with that port.
// The client sends the URL's host:port as Host and "http://host:port" as
// Origin, as Caddy's own command line does, and no Origin over a unix
// socket, where Caddy rejects any Origin header.
//
// # Errors
//
// Every failure of a request is an [*Error] that matches one of
// [ErrUnreachable], [ErrForbidden], [ErrMissing], [ErrRejected],
// [ErrConflict] and [ErrUnexpectedResponse] with [errors.Is], and carries
// the status code and Caddy's message. An invalid spec is a [*SpecError]
// that matches [ErrInvalidSpec].
package caddyapi

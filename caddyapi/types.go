package caddyapi

import (
	"encoding/json"
	"time"
)

// The types below mirror the parts of Caddy's JSON config that the router
// writes, with the json tags of Caddy v2.11.9: caddyhttp.Route,
// caddyhttp.MatchHost, reverseproxy.Handler, reverseproxy.LoadBalancing,
// reverseproxy.HTTPTransport and reverseproxy.KeepAlive. Fields that the
// router never sets are left out.

// handlerReverseProxy and handlerSubroute are the "handler" values of the
// two HTTP handler modules this package reads or writes.
const (
	handlerReverseProxy = "reverse_proxy"
	handlerSubroute     = "subroute"
)

// route is one element of a Caddy routes array.
type route struct {
	ID       string         `json:"@id"`
	Match    []matcherSet   `json:"match"`
	Handle   []reverseProxy `json:"handle"`
	Terminal bool           `json:"terminal"`
}

// matcherSet is one element of a route's "match" list. The router uses only
// the host matcher.
type matcherSet struct {
	Host []string `json:"host"`
}

// reverseProxy is the reverse_proxy handler.
type reverseProxy struct {
	Handler          string         `json:"handler"`
	Upstreams        []upstream     `json:"upstreams"`
	LoadBalancing    *loadBalancing `json:"load_balancing,omitempty"`
	StreamCloseDelay duration       `json:"stream_close_delay,omitempty"`
	Transport        *httpTransport `json:"transport,omitempty"`
}

// upstream is one backend of a reverse_proxy handler.
type upstream struct {
	Dial string `json:"dial"`
}

// loadBalancing holds the retry settings of a reverse_proxy handler.
type loadBalancing struct {
	TryDuration duration `json:"try_duration,omitempty"`
	TryInterval duration `json:"try_interval,omitempty"`
}

// httpTransport is the "http" transport of a reverse_proxy handler.
type httpTransport struct {
	Protocol  string     `json:"protocol"`
	KeepAlive *keepAlive `json:"keep_alive,omitempty"`
}

// keepAlive holds the upstream keep-alive settings of an HTTP transport.
type keepAlive struct {
	IdleTimeout duration `json:"idle_timeout,omitempty"`
}

// duration is a time.Duration that encodes as a Go duration string such as
// "5m0s", which Caddy's caddy.Duration accepts.
type duration time.Duration

// MarshalJSON encodes d as a quoted Go duration string.
func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// routeHeader contains the only field that classifies an element of a
// routes array: its @id. Elements that are not JSON objects fail to decode
// into it and count as not owned.
type routeHeader struct {
	ID string `json:"@id"`
}

// ownedRoute contains the fields that Owned decodes back into a RouteSpec.
// It leaves out the proxy settings, so a route that an operator edited by
// hand still decodes.
type ownedRoute struct {
	ID     string       `json:"@id"`
	Match  []matcherSet `json:"match"`
	Handle []struct {
		Handler   string     `json:"handler"`
		Upstreams []upstream `json:"upstreams"`
	} `json:"handle"`
}

package caddyapi

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// RouteSpec is one desired route: requests whose Host is one of Hosts go to
// one of the upstreams in Dials.
type RouteSpec struct {
	// ID is the route's full @id, prefix included, such as
	// "k8s-router.default.web". It must be unique in the whole Caddy config.
	ID string

	// Hosts are the host names the route matches, such as
	// "web.example.com". Apply lower-cases and sorts them, and a "*" label
	// is allowed for a wildcard. At least one is required.
	Hosts []string

	// Dials are the upstream addresses: a literal IP address and a port
	// joined by [net.JoinHostPort], such as "10.0.0.7:8080" or
	// "[fd00::7]:8080". [JoinDial] builds them. Apply writes the canonical
	// form of each address, sorted. At least one is required.
	Dials []string
}

// JoinDial returns the dial address for addr and port in the form that
// [RouteSpec.Dials] expects, with brackets around an IPv6 address.
func JoinDial(addr netip.Addr, port uint16) string {
	return net.JoinHostPort(addr.String(), strconv.Itoa(int(port)))
}

// normalizeSpecs validates specs and returns copies with lower-cased sorted
// hosts and canonical sorted dials, ordered by ID. The caller's slices are
// not modified.
func normalizeSpecs(prefix string, specs []RouteSpec) ([]RouteSpec, error) {
	out := make([]RouteSpec, 0, len(specs))
	seen := make(map[string]bool, len(specs))

	for _, spec := range specs {
		normalized, err := normalizeSpec(prefix, spec)
		if err != nil {
			return nil, err
		}

		if seen[normalized.ID] {
			return nil, &SpecError{RouteID: spec.ID, Field: "ID", Value: spec.ID, Reason: "appears more than once; each route needs its own id"}
		}
		seen[normalized.ID] = true

		out = append(out, normalized)
	}

	slices.SortFunc(out, func(a, b RouteSpec) int { return strings.Compare(a.ID, b.ID) })

	return out, nil
}

// normalizeSpec validates one spec and returns its normalized copy.
func normalizeSpec(prefix string, spec RouteSpec) (RouteSpec, error) {
	if err := validateRouteID(prefix, spec.ID); err != nil {
		return RouteSpec{}, err
	}

	// hosts
	if len(spec.Hosts) == 0 {
		return RouteSpec{}, &SpecError{RouteID: spec.ID, Field: "Hosts", Reason: "is empty; a route needs at least one host"}
	}
	hosts := make([]string, 0, len(spec.Hosts))
	for _, host := range spec.Hosts {
		normalized := strings.ToLower(host)
		if reason := validateHost(normalized); reason != "" {
			return RouteSpec{}, &SpecError{RouteID: spec.ID, Field: "Hosts", Value: host, Reason: reason}
		}
		if slices.Contains(hosts, normalized) {
			return RouteSpec{}, &SpecError{RouteID: spec.ID, Field: "Hosts", Value: host, Reason: "appears more than once, which Caddy rejects"}
		}
		hosts = append(hosts, normalized)
	}
	slices.Sort(hosts)

	// dials
	if len(spec.Dials) == 0 {
		return RouteSpec{}, &SpecError{RouteID: spec.ID, Field: "Dials", Reason: "is empty; leave the route out until it has an upstream"}
	}
	dials := make([]string, 0, len(spec.Dials))
	for _, dial := range spec.Dials {
		canonical, reason := canonicalDial(dial)
		if reason != "" {
			return RouteSpec{}, &SpecError{RouteID: spec.ID, Field: "Dials", Value: dial, Reason: reason}
		}
		if slices.Contains(dials, canonical) {
			return RouteSpec{}, &SpecError{RouteID: spec.ID, Field: "Dials", Value: dial, Reason: "appears more than once"}
		}
		dials = append(dials, canonical)
	}
	slices.Sort(dials)

	return RouteSpec{ID: spec.ID, Hosts: hosts, Dials: dials}, nil
}

// validateRouteID returns a [*SpecError] unless id is prefix followed by at
// least one character, none of which breaks the admin API path /id/<id>.
func validateRouteID(prefix, id string) error {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return &SpecError{RouteID: id, Field: "ID", Value: id, Reason: fmt.Sprintf("lacks the owned-route prefix %q; build ids with that prefix", prefix)}
	}
	if rest == "" {
		return &SpecError{RouteID: id, Field: "ID", Value: id, Reason: "has nothing after the prefix"}
	}

	for _, r := range rest {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("/?#%", r) {
			return &SpecError{RouteID: id, Field: "ID", Value: id, Reason: fmt.Sprintf("contains %q, which Caddy cannot address in the admin API path /id/<id>", r)}
		}
	}

	return nil
}

// validateHost returns why host, already lower-cased, is not a host name
// that Caddy's host matcher can match, or "" if it is one. Only ASCII
// letters, digits, '-', '.' and whole "*" labels are allowed, which rules
// out ports, paths, placeholders and unconverted international names.
func validateHost(host string) string {
	if host == "" {
		return "contains an empty host name"
	}
	if len(host) > 253 {
		return "is longer than 253 characters"
	}

	for label := range strings.SplitSeq(host, ".") {
		if label == "*" {
			continue
		}
		if label == "" {
			return "has an empty label; remove the extra dot"
		}

		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Sprintf("contains %q; use letters, digits, '-' and '.', with international names in their xn-- form", r)
			}
		}
	}

	return ""
}

// canonicalDial parses dial as an IP address and a port and returns it as
// [JoinDial] writes it, or "" and the reason it is invalid. A string such as
// "::1:8080" is rejected, because Caddy v2.11.9 accepts it at load time and
// then fails every request with 502.
func canonicalDial(dial string) (canonical, reason string) {
	const fix = `expected an IP address and a port joined by net.JoinHostPort, such as "10.0.0.7:8080" or "[fd00::7]:8080"`

	if dial == "" {
		return "", "contains an empty address"
	}

	host, portText, err := net.SplitHostPort(dial)
	if err != nil {
		return "", fix
	}

	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Sprintf("host %q is not an IP address; %s", host, fix)
	}
	if addr.Zone() != "" {
		return "", fmt.Sprintf("IPv6 zone %q is not supported; use an address without a zone", addr.Zone())
	}

	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return "", fmt.Sprintf("port %q is not a number from 1 to 65535", portText)
	}

	return JoinDial(addr, uint16(port)), ""
}

// buildRoute returns the Caddy route for a normalized spec with proxy
// settings p, whose zero fields are left out.
func buildRoute(spec RouteSpec, p ProxySettings) route {
	proxy := reverseProxy{Handler: handlerReverseProxy}
	for _, dial := range spec.Dials {
		proxy.Upstreams = append(proxy.Upstreams, upstream{Dial: dial})
	}

	if p.TryDuration > 0 {
		proxy.LoadBalancing = &loadBalancing{TryDuration: duration(p.TryDuration), TryInterval: duration(p.TryInterval)}
	}
	proxy.StreamCloseDelay = duration(p.StreamCloseDelay)

	// Always name the transport. A reverse_proxy without one shares Caddy's
	// built-in default transport, and on Caddy v2.11.9 every reload then
	// leaves that route's upstream connections open: a benchmark reached
	// 10,791 file descriptors after 539 reloads.
	proxy.Transport = &httpTransport{Protocol: "http"}
	if p.KeepAliveIdle > 0 {
		proxy.Transport.KeepAlive = &keepAlive{IdleTimeout: duration(p.KeepAliveIdle)}
	}

	return route{
		ID:       spec.ID,
		Match:    []matcherSet{{Host: spec.Hosts}},
		Handle:   []reverseProxy{proxy},
		Terminal: true,
	}
}

// decodeOwnedRoute returns the RouteSpec of an owned route as Caddy stores
// it: the hosts of all its host matchers and the dials of all its
// reverse_proxy handlers, each sorted.
func decodeOwnedRoute(raw json.RawMessage) (RouteSpec, error) {
	var r ownedRoute
	if err := json.Unmarshal(raw, &r); err != nil {
		return RouteSpec{}, fmt.Errorf("decoding owned route: %w", err)
	}

	spec := RouteSpec{ID: r.ID}
	for _, set := range r.Match {
		spec.Hosts = append(spec.Hosts, set.Host...)
	}
	for _, handler := range r.Handle {
		if handler.Handler != handlerReverseProxy {
			continue
		}
		for _, up := range handler.Upstreams {
			spec.Dials = append(spec.Dials, up.Dial)
		}
	}
	slices.Sort(spec.Hosts)
	slices.Sort(spec.Dials)

	return spec, nil
}

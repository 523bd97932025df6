package routing

import (
	"fmt"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"
)

// RouteID returns the Caddy @id of the route for the Deployment
// namespace/name: prefix + namespace + "." + name. Kubernetes namespaces
// never contain dots, so the first dot after the prefix separates the two
// parts and the id is unique per Deployment. The id contains no '/' as long
// as prefix passes [ValidateRouteIDPrefix] and namespace and name are valid
// Kubernetes names; RouteID itself does not check its arguments.
func RouteID(prefix, namespace, name string) string {
	return prefix + namespace + "." + name
}

// ParseRouteID splits an id made by [RouteID] with the same prefix into the
// Deployment namespace and name. It returns ok == false if id lacks the
// prefix, has no dot after it, or if the namespace is not a DNS-1123 label
// or the name not a DNS-1123 subdomain, which excludes ids written by
// anything other than RouteID.
func ParseRouteID(prefix, id string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(id, prefix)
	if !found {
		return "", "", false
	}

	namespace, name, found = strings.Cut(rest, ".")
	if !found {
		return "", "", false
	}

	if len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", false
	}

	return namespace, name, true
}

// ValidateRouteIDPrefix returns an error if prefix is empty or contains a
// '/', whitespace or a control character. Caddy addresses a route by id in
// the admin API path /id/<id>, so '?', '#' and '%' are rejected as well.
func ValidateRouteIDPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("route id prefix is empty: expected a short text such as %q", DefaultRouteIDPrefix)
	}

	for _, r := range prefix {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("route id prefix %q contains whitespace or a control character: expected a short text such as %q", prefix, DefaultRouteIDPrefix)
		}

		if strings.ContainsRune("/?#%", r) {
			return fmt.Errorf("route id prefix %q contains %q, which is not allowed in the admin API path /id/<id>: expected a short text such as %q", prefix, r, DefaultRouteIDPrefix)
		}
	}

	return nil
}

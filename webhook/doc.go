// Package webhook is the mutating admission webhook that stamps the
// [routing.AnnotationRouteURL] annotation on apps/v1 Deployments as they are
// created or updated. Clients see their URL in the create response, and no
// controller has to write it back with a PATCH that races the Deployment's
// owner.
//
// The [Handler] computes a JSON patch over /metadata/annotations only and
// never re-encodes the object, so fields unknown to this build's API types
// survive. It has no side effects: it calls neither Caddy nor the API
// server, so a dry-run request gets the same response as a real one.
// [NewServer] serves it over TLS with certificates reloaded from disk.
package webhook

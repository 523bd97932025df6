package caddyapi

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, one per class of failure. Every error that a [Client]
// method returns after talking to Caddy is an [*Error] whose Kind is one of
// these, so callers can match the class with [errors.Is] and read the status
// and Caddy's message with [errors.As].
var (
	// ErrUnreachable means that no HTTP response arrived: the connection
	// failed, was reset, or the request timed out. For a write, Caddy may or
	// may not have applied the change, and the next Apply reads the result.
	ErrUnreachable = errors.New("caddy admin API unreachable")

	// ErrForbidden means that Caddy responded with 403, which it does when the
	// Host header is not one of its allowed origins or an Origin header is
	// not allowed. The fix is an admin URL that names Caddy's admin listener.
	ErrForbidden = errors.New("caddy admin API rejected the Host or Origin header")

	// ErrMissing means that the configured server, the subroute with the
	// configured @id, or the path to it does not exist in Caddy's config.
	ErrMissing = errors.New("target routes array not found in the caddy config")

	// ErrRejected means that Caddy refused to load the routes written to it,
	// for example because of a duplicate @id.
	ErrRejected = errors.New("caddy rejected the config")

	// ErrConflict means that the config changed between the read and the
	// write, so Caddy responded to If-Match with 412. Apply returns it only
	// when its last attempt failed this way.
	ErrConflict = errors.New("caddy config changed between read and write")

	// ErrUnexpectedResponse means that Caddy responded with a status, header
	// or body that the client does not expect, such as a 5xx on a read or a
	// body over the size limit.
	ErrUnexpectedResponse = errors.New("unexpected response from the caddy admin API")

	// ErrInvalidSpec means that a [RouteSpec] passed to Apply is invalid.
	// The error is a [*SpecError] naming the route and the value.
	ErrInvalidSpec = errors.New("invalid route spec")
)

// Error is a failed admin API request. Kind is one of the sentinel errors
// above, and errors.Is(err, Kind) holds.
type Error struct {
	// Kind is the class of the failure, such as [ErrForbidden].
	Kind error
	// AdminURL is the admin endpoint from [Config].
	AdminURL string
	// Method and Path are the HTTP method and the admin API path of the
	// request, such as "PATCH" and "/config/apps/http/servers/srv0/routes".
	Method string
	Path   string
	// StatusCode is the HTTP status of Caddy's response, or 0 when there was
	// no response.
	StatusCode int
	// Message is the "error" field of Caddy's JSON response, or the start of
	// the body when it has no such field.
	Message string
	// Hint describes what to check or change next. It may be empty.
	Hint string
	// Err is the underlying cause, such as a network error. It may be nil.
	Err error

	// timedOut reports whether the request ran out of time.
	timedOut bool
}

// Error returns the class, the request, the status, Caddy's message and the
// hint, in that order.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s %s%s", e.Kind, e.Method, e.AdminURL, e.Path)

	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": status %d", e.StatusCode)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}

	return b.String()
}

// Unwrap returns Kind and, when set, the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}

	return []error{e.Kind, e.Err}
}

// SpecError reports an invalid [RouteSpec]. It matches [ErrInvalidSpec]
// with [errors.Is].
type SpecError struct {
	// RouteID is the ID of the spec, as given.
	RouteID string
	// Field is the spec field that holds the value: "ID", "Hosts" or "Dials".
	Field string
	// Value is the invalid value, as given. It is empty when the field
	// itself is empty.
	Value string
	// Reason describes what the value violates and how to fix it.
	Reason string
}

// Error returns the route, the field, the quoted value if any, and the
// reason.
func (e *SpecError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%v: route %q: %s %s", ErrInvalidSpec, e.RouteID, e.Field, e.Reason)
	}

	return fmt.Sprintf("%v: route %q: %s value %q: %s", ErrInvalidSpec, e.RouteID, e.Field, e.Value, e.Reason)
}

// Is reports whether target is [ErrInvalidSpec].
func (e *SpecError) Is(target error) bool {
	return target == ErrInvalidSpec
}

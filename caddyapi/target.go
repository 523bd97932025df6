package caddyapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// snapshot is the managed routes array as read, with what a conditional
// write of it needs.
type snapshot struct {
	// etag is the Etag header of the read, sent back as If-Match.
	etag string
	// objectPath is the config path of the object that contains the routes
	// array, taken from the Etag, such as
	// "/config/apps/http/servers/srv0". For a subroute it is the path that
	// Caddy resolved the @id to at the time of the read.
	objectPath string
	// routes is the routes array, with each element as Caddy encoded it.
	routes []json.RawMessage
	// hasRoutesKey reports whether the object has a "routes" key. Caddy
	// v2.11.9 updates an existing key only with PATCH and creates a missing
	// one only with PUT.
	hasRoutesKey bool
}

// readPath returns the admin API path of the object that contains the
// managed routes array: the server, or the subroute handler by its @id.
func (c *Client) readPath() string {
	if c.cfg.SubrouteID != "" {
		return "/id/" + c.cfg.SubrouteID
	}

	return "/config/apps/http/servers/" + c.cfg.Server
}

// describeTarget names the managed routes array for messages.
func (c *Client) describeTarget() string {
	if c.cfg.SubrouteID != "" {
		return fmt.Sprintf("routes of the subroute with @id %q", c.cfg.SubrouteID)
	}

	return fmt.Sprintf("routes of server %q", c.cfg.Server)
}

// read fetches the object that contains the managed routes array with one
// GET and returns its routes and Etag.
//
// Reading the whole server or subroute handler, rather than only its
// routes, lets the client tell a missing server from a missing "routes" key
// and check the handler type. The Etag then covers the whole object, so a
// concurrent change to any of its fields makes the write fail with 412.
func (c *Client) read(ctx context.Context) (snapshot, error) {
	path := c.readPath()
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return snapshot{}, err
	}

	// Caddy's Etag has the form "<path> <hash>", with the path resolved
	// from an @id
	objectPath, ok := etagPath(resp.etag)
	if !ok {
		hint := fmt.Sprintf("Etag header %q is not of the form \"<path> <hash>\"; check that the admin URL points to Caddy", resp.etag)
		return snapshot{}, c.newError(ErrUnexpectedResponse, http.MethodGet, path, resp.status, "", hint, nil)
	}

	// decode the object
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &fields); err != nil {
		hint := "the object is not a JSON object"
		return snapshot{}, c.newError(ErrUnexpectedResponse, http.MethodGet, path, resp.status, "", hint, err)
	}
	if fields == nil {
		return snapshot{}, c.newError(ErrMissing, http.MethodGet, path, resp.status, "no object at this path", c.missingHint(), nil)
	}
	if c.cfg.SubrouteID != "" {
		if err := c.checkSubroute(fields); err != nil {
			return snapshot{}, err
		}
	}

	// decode the routes array
	snap := snapshot{etag: resp.etag, objectPath: objectPath}
	raw, hasRoutes := fields["routes"]
	snap.hasRoutesKey = hasRoutes
	if hasRoutes {
		if err := json.Unmarshal(raw, &snap.routes); err != nil {
			hint := fmt.Sprintf("the %s is not a JSON array", c.describeTarget())
			return snapshot{}, c.newError(ErrUnexpectedResponse, http.MethodGet, path, resp.status, "", hint, err)
		}
	}

	return snap, nil
}

// checkSubroute returns an [ErrMissing] error unless fields, the object that
// Config.SubrouteID names, is a subroute handler.
func (c *Client) checkSubroute(fields map[string]json.RawMessage) error {
	var handler string
	_ = json.Unmarshal(fields["handler"], &handler)
	if handler == handlerSubroute {
		return nil
	}

	message := fmt.Sprintf("the object with @id %q is not a subroute handler (handler %q)", c.cfg.SubrouteID, handler)
	hint := fmt.Sprintf(`put "@id": %q on a handler with "handler": "subroute"`, c.cfg.SubrouteID)

	return c.newError(ErrMissing, http.MethodGet, c.readPath(), http.StatusOK, message, hint, nil)
}

// write replaces the routes array read in snap with routes, on the
// condition that the object is unchanged since the read. A concurrent
// change makes it fail with [ErrConflict].
func (c *Client) write(ctx context.Context, snap snapshot, routes []json.RawMessage) error {
	if routes == nil {
		routes = []json.RawMessage{}
	}
	body, err := json.Marshal(routes)
	if err != nil {
		return fmt.Errorf("encoding the %s: %w", c.describeTarget(), err)
	}

	method := http.MethodPatch
	if !snap.hasRoutesKey {
		method = http.MethodPut
	}

	_, err = c.do(ctx, method, snap.objectPath+"/routes", body, snap.etag)

	return err
}

// etagPath returns the config path in a Caddy Etag `"<path> <hash>"`.
func etagPath(etag string) (string, bool) {
	inner, ok := strings.CutPrefix(etag, `"`)
	if !ok {
		return "", false
	}
	inner, ok = strings.CutSuffix(inner, `"`)
	if !ok {
		return "", false
	}

	parts := strings.Fields(inner)
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "/config/") {
		return "", false
	}

	return parts[0], true
}

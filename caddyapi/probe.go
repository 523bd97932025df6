package caddyapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// FirstRouteID returns the @id of the first route of the managed routes
// array, or "" when that route has no @id or the array is empty. It sends
// one GET of that single value, so it costs little even with thousands of
// routes. Apply writes the owned routes as one block at the start of the
// array, so a caller that knows its first owned id can tell from this value
// alone that Caddy lost its routes, for example after a restart without
// --resume. Caddy v2.11.9 responds with 400 both for an empty array and for a
// missing server, so both return ""; Check and Apply tell them apart.
func (c *Client) FirstRouteID(ctx context.Context) (string, error) {
	var id string
	_, err := c.retry(ctx, func(int) error {
		resp, err := c.do(ctx, http.MethodGet, c.readPath()+"/routes/0/@id", nil, "")
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest {
			id = ""
			return nil
		}
		if err != nil {
			return err
		}

		// the value is a JSON string, or null for a route without @id
		var value *string
		if err := json.Unmarshal(resp.body, &value); err != nil {
			return c.newError(ErrUnexpectedResponse, http.MethodGet, c.readPath()+"/routes/0/@id", resp.status, "", "the @id is not a JSON string", err)
		}
		id = ""
		if value != nil {
			id = *value
		}

		return nil
	})

	return id, err
}

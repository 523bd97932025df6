package e2eutil

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// Route is one element of a Caddy routes array, reduced to what decides
// where a request goes. It decodes routes loosely, so that routes of other
// clients, which may have other handlers, decode too.
type Route struct {
	// ID is the route's @id, empty when it has none.
	ID string
	// Hosts are the hosts of all its host matchers, sorted.
	Hosts []string
	// Dials are the upstream dial addresses of all its reverse_proxy
	// handlers, sorted.
	Dials []string
}

// String returns the route as "id hosts -> dials", for messages.
func (r Route) String() string {
	return fmt.Sprintf("%s %v -> %v", r.ID, r.Hosts, r.Dials)
}

// Equal reports whether r and other have the same id, hosts and dials.
func (r Route) Equal(other Route) bool {
	return r.ID == other.ID && slices.Equal(r.Hosts, other.Hosts) && slices.Equal(r.Dials, other.Dials)
}

// rawRoute is the part of Caddy's route JSON that Route keeps.
type rawRoute struct {
	ID    string `json:"@id"`
	Match []struct {
		Host []string `json:"host"`
	} `json:"match"`
	Handle []struct {
		Handler   string `json:"handler"`
		Upstreams []struct {
			Dial string `json:"dial"`
		} `json:"upstreams"`
	} `json:"handle"`
}

// readAttempts bounds how often ReadRoutes sends its GET when it gets no
// response. Caddy v2.11.9 replaces its admin server on every config change
// and closes the old one's connections, so a read during a write of another
// client can fail with a reset or EOF.
const readAttempts = 5

// ReadRoutes returns the routes array of the HTTP server named server, in
// Caddy's order, and its Etag. It reads from Caddy's admin API directly, and
// repeats the read when it gets no response, up to readAttempts times.
func ReadRoutes(ctx context.Context, caddy *testbed.Caddy, server string) ([]Route, string, error) {
	path := "/config/apps/http/servers/" + server + "/routes"

	var (
		status int
		etag   string
		body   []byte
		err    error
	)
	for attempt := 1; attempt <= readAttempts; attempt++ {
		status, etag, body, err = caddy.Admin(ctx, http.MethodGet, path, nil)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading %s (%d attempts): %w", path, readAttempts, err)
	}
	if status != http.StatusOK {
		return nil, "", fmt.Errorf("reading %s: status %d: %s", path, status, body)
	}

	var raws []rawRoute
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, "", fmt.Errorf("decoding %s: %w", path, err)
	}

	routes := make([]Route, 0, len(raws))
	for _, raw := range raws {
		r := Route{ID: raw.ID}
		for _, m := range raw.Match {
			r.Hosts = append(r.Hosts, m.Host...)
		}
		for _, h := range raw.Handle {
			if h.Handler != "reverse_proxy" {
				continue
			}
			for _, u := range h.Upstreams {
				r.Dials = append(r.Dials, u.Dial)
			}
		}
		slices.Sort(r.Hosts)
		slices.Sort(r.Dials)
		routes = append(routes, r)
	}

	return routes, etag, nil
}

// Owned returns the routes whose id starts with prefix, sorted by id.
func Owned(routes []Route, prefix string) []Route {
	var owned []Route
	for _, r := range routes {
		if strings.HasPrefix(r.ID, prefix) {
			owned = append(owned, r)
		}
	}
	slices.SortFunc(owned, func(a, b Route) int { return strings.Compare(a.ID, b.ID) })

	return owned
}

// IDs returns the id of each route, in order.
func IDs(routes []Route) []string {
	ids := make([]string, len(routes))
	for i, r := range routes {
		ids[i] = r.ID
	}

	return ids
}

// DiffRoutes compares got with want, both sorted by id, and returns one
// line per route that is missing, unexpected or different, or "" when they
// are equal.
func DiffRoutes(got, want []Route) string {
	byID := make(map[string]Route, len(got))
	for _, r := range got {
		byID[r.ID] = r
	}

	var lines []string
	for _, w := range want {
		g, ok := byID[w.ID]
		switch {
		case !ok:
			lines = append(lines, "missing: "+w.String())
		case !g.Equal(w):
			lines = append(lines, fmt.Sprintf("different: %s, want %s", g, w))
		}
		delete(byID, w.ID)
	}
	for _, g := range got {
		if _, extra := byID[g.ID]; extra {
			lines = append(lines, "unexpected: "+g.String())
		}
	}

	return strings.Join(lines, "\n")
}

package main

import (
	"context"

	"github.com/caddy-k8s-router/caddy-k8s-router/caddyapi"
	"github.com/caddy-k8s-router/caddy-k8s-router/watch"
)

// caddyWriter fills the controller's RouteWriter with the caddyapi client.
type caddyWriter struct {
	client *caddyapi.Client
}

// SetRoutes converts routes to caddyapi specs and applies them.
func (w caddyWriter) SetRoutes(ctx context.Context, routes []watch.Route) (watch.Change, error) {
	specs := make([]caddyapi.RouteSpec, len(routes))
	for i, r := range routes {
		specs[i] = caddyapi.RouteSpec{ID: r.ID, Hosts: []string{r.Host}, Dials: r.Upstreams}
	}

	res, err := w.client.Apply(ctx, specs)
	if err != nil {
		return watch.Change{}, err
	}

	return watch.Change{Written: res.Written, Added: res.Added, Updated: res.Updated, Removed: res.Removed}, nil
}

// Routes returns the routes the router owns in Caddy.
func (w caddyWriter) Routes(ctx context.Context) ([]watch.Route, error) {
	specs, err := w.client.Owned(ctx)
	if err != nil {
		return nil, err
	}

	routes := make([]watch.Route, 0, len(specs))
	for _, s := range specs {
		if len(s.Hosts) == 0 {
			continue
		}
		routes = append(routes, watch.Route{ID: s.ID, Host: s.Hosts[0], Upstreams: s.Dials})
	}

	return routes, nil
}

// FirstRouteID returns the id of the first route of the managed array.
func (w caddyWriter) FirstRouteID(ctx context.Context) (string, error) {
	return w.client.FirstRouteID(ctx)
}

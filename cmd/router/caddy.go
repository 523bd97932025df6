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

package caddyapi

import (
	"testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

func TestIntegrationFirstRouteID(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{})
	ctx := t.Context()

	id, err := c.FirstRouteID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id != testbed.CatchAllID {
		t.Errorf("FirstRouteID before Apply = %q, want %q", id, testbed.CatchAllID)
	}

	if _, err := c.Apply(ctx, []RouteSpec{spec("default.web", "web.example.test", backend.Addr)}); err != nil {
		t.Fatal(err)
	}
	id, err = c.FirstRouteID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id != "k8s-router.default.web" {
		t.Errorf("FirstRouteID after Apply = %q, want the owned route", id)
	}

	// a restart without --resume loses the owned routes
	if err := caddy.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	id, err = c.FirstRouteID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id != testbed.CatchAllID {
		t.Errorf("FirstRouteID after a restart = %q, want %q", id, testbed.CatchAllID)
	}
}

func TestIntegrationFirstRouteIDEmpty(t *testing.T) {
	for _, config := range []string{emptyRoutesConfig, noRoutesConfig} {
		caddy := startCaddy(t, testbed.CaddyOptions{Config: []byte(config)})
		c := newClient(t, caddy, Config{})

		id, err := c.FirstRouteID(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if id != "" {
			t.Errorf("FirstRouteID of an empty routes array = %q, want empty", id)
		}
	}
}

package caddyapi_test

import (
	"context"
	"errors"
	"log"
	"net/netip"

	"github.com/caddy-k8s-router/caddy-k8s-router/caddyapi"
)

// The router builds one spec per workspace and applies the whole set; a
// workspace left out of the set loses its route.
func ExampleClient_Apply() {
	client, err := caddyapi.New(caddyapi.Config{AdminURL: "http://localhost:2019"})
	if err != nil {
		log.Fatal(err)
	}

	specs := []caddyapi.RouteSpec{{
		ID:    caddyapi.DefaultIDPrefix + "default.web",
		Hosts: []string{"web.example.com"},
		Dials: []string{caddyapi.JoinDial(netip.MustParseAddr("10.0.0.7"), 8089)},
	}}

	result, err := client.Apply(context.Background(), specs)
	switch {
	case errors.Is(err, caddyapi.ErrForbidden):
		log.Fatalf("the admin URL does not match Caddy's admin.listen: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	log.Printf("written=%v added=%v updated=%v removed=%v", result.Written, result.Added, result.Updated, result.Removed)
}

package caddyapi

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCanonicalDial(t *testing.T) {
	tests := []struct {
		dial string
		want string // "" when the dial is invalid
	}{
		{"10.0.0.7:8080", "10.0.0.7:8080"},
		{"[fd00::7]:8080", "[fd00::7]:8080"},
		{"[FD00:0::7]:80", "[fd00::7]:80"},
		{"[::ffff:10.0.0.7]:80", "[::ffff:10.0.0.7]:80"},
		{"::1:8080", ""},
		{"fd00::7", ""},
		{"10.0.0.7", ""},
		{"web:8080", ""},
		{"localhost:8080", ""},
		{"010.0.0.7:80", ""},
		{"10.0.0.7:0", ""},
		{"10.0.0.7:65536", ""},
		{"10.0.0.7:http", ""},
		{"[fe80::1%eth0]:80", ""},
		{"", ""},
	}

	for _, tt := range tests {
		t.Run(tt.dial, func(t *testing.T) {
			got, reason := canonicalDial(tt.dial)

			if got != tt.want {
				t.Errorf("canonicalDial(%q) = %q, want %q", tt.dial, got, tt.want)
			}
			if (reason == "") != (tt.want != "") {
				t.Errorf("canonicalDial(%q) reason = %q", tt.dial, reason)
			}
		})
	}
}

func TestJoinDial(t *testing.T) {
	if got := JoinDial(netip.MustParseAddr("::1"), 8080); got != "[::1]:8080" {
		t.Errorf("JoinDial(::1) = %q, want [::1]:8080", got)
	}
	if got := JoinDial(netip.MustParseAddr("10.0.0.7"), 80); got != "10.0.0.7:80" {
		t.Errorf("JoinDial(10.0.0.7) = %q, want 10.0.0.7:80", got)
	}
}

func TestValidateHost(t *testing.T) {
	tests := []struct {
		host  string
		valid bool
	}{
		{"web.example.com", true},
		{"*.example.com", true},
		{"xn--bcher-kva.example", true},
		{"", false},
		{"web..example.com", false},
		{"web.example.com:80", false},
		{"web.example.com/path", false},
		{"bücher.example", false},
		{"{http.request.host}", false},
		{"web example.com", false},
		{strings.Repeat("a.", 127) + "com", false},
	}

	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			reason := validateHost(tt.host)
			if (reason == "") != tt.valid {
				t.Errorf("validateHost(%q) = %q, want valid %v", tt.host, reason, tt.valid)
			}
		})
	}
}

func TestNormalizeSpecsRejects(t *testing.T) {
	tests := []struct {
		name  string
		specs []RouteSpec
		field string
	}{
		{"missing prefix", []RouteSpec{{ID: "default.web", Hosts: []string{"a.example"}, Dials: []string{"10.0.0.1:80"}}}, "ID"},
		{"bare prefix", []RouteSpec{{ID: "k8s-router.", Hosts: []string{"a.example"}, Dials: []string{"10.0.0.1:80"}}}, "ID"},
		{"slash in id", []RouteSpec{{ID: "k8s-router.a/b", Hosts: []string{"a.example"}, Dials: []string{"10.0.0.1:80"}}}, "ID"},
		{"duplicate id", []RouteSpec{
			{ID: "k8s-router.a", Hosts: []string{"a.example"}, Dials: []string{"10.0.0.1:80"}},
			{ID: "k8s-router.a", Hosts: []string{"b.example"}, Dials: []string{"10.0.0.2:80"}},
		}, "ID"},
		{"no hosts", []RouteSpec{{ID: "k8s-router.a", Dials: []string{"10.0.0.1:80"}}}, "Hosts"},
		{"duplicate host", []RouteSpec{{ID: "k8s-router.a", Hosts: []string{"a.example", "A.example"}, Dials: []string{"10.0.0.1:80"}}}, "Hosts"},
		{"no dials", []RouteSpec{{ID: "k8s-router.a", Hosts: []string{"a.example"}}}, "Dials"},
		{"duplicate dial", []RouteSpec{{ID: "k8s-router.a", Hosts: []string{"a.example"}, Dials: []string{"[::1]:80", "[0::1]:80"}}}, "Dials"},
		{"bad dial", []RouteSpec{{ID: "k8s-router.a", Hosts: []string{"a.example"}, Dials: []string{"::1:80"}}}, "Dials"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := normalizeSpecs(DefaultIDPrefix, tt.specs)

			var specErr *SpecError
			if !errors.As(err, &specErr) {
				t.Fatalf("error = %v, want a *SpecError", err)
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("error %v does not match ErrInvalidSpec", err)
			}
			if specErr.Field != tt.field {
				t.Errorf("Field = %q, want %q", specErr.Field, tt.field)
			}
		})
	}
}

func TestNormalizeSpecsSorts(t *testing.T) {
	specs := []RouteSpec{
		{ID: "k8s-router.b", Hosts: []string{"Z.example", "a.example"}, Dials: []string{"10.0.0.2:80", "10.0.0.1:80"}},
		{ID: "k8s-router.a", Hosts: []string{"a2.example"}, Dials: []string{"[FD00::1]:80"}},
	}
	original := slices.Clone(specs[0].Hosts)

	got, err := normalizeSpecs(DefaultIDPrefix, specs)
	if err != nil {
		t.Fatalf("normalizeSpecs: %v", err)
	}

	if got[0].ID != "k8s-router.a" || got[1].ID != "k8s-router.b" {
		t.Errorf("ids = %q, %q; want sorted", got[0].ID, got[1].ID)
	}
	if want := []string{"a.example", "z.example"}; !slices.Equal(got[1].Hosts, want) {
		t.Errorf("hosts = %q, want %q", got[1].Hosts, want)
	}
	if want := []string{"10.0.0.1:80", "10.0.0.2:80"}; !slices.Equal(got[1].Dials, want) {
		t.Errorf("dials = %q, want %q", got[1].Dials, want)
	}
	if want := []string{"[fd00::1]:80"}; !slices.Equal(got[0].Dials, want) {
		t.Errorf("dials = %q, want %q", got[0].Dials, want)
	}
	if !slices.Equal(specs[0].Hosts, original) {
		t.Errorf("caller's hosts changed to %q", specs[0].Hosts)
	}
}

func TestBuildRouteJSON(t *testing.T) {
	spec := RouteSpec{ID: "k8s-router.default.web", Hosts: []string{"web.example.com"}, Dials: []string{"10.0.0.7:8080", "[fd00::7]:8080"}}
	settings := ProxySettings{}.withDefaults()

	data, err := json.Marshal(buildRoute(spec, settings))
	if err != nil {
		t.Fatalf("encoding route: %v", err)
	}

	want := `{"@id":"k8s-router.default.web","match":[{"host":["web.example.com"]}],` +
		`"handle":[{"handler":"reverse_proxy","upstreams":[{"dial":"10.0.0.7:8080"},{"dial":"[fd00::7]:8080"}],` +
		`"load_balancing":{"try_duration":"5s","try_interval":"250ms"},"stream_close_delay":"5m0s",` +
		`"transport":{"protocol":"http","keep_alive":{"idle_timeout":"30s"}}}],"terminal":true}`
	if string(data) != want {
		t.Errorf("route JSON =\n%s\nwant\n%s", data, want)
	}
}

func TestBuildRouteOmitsDisabledSettings(t *testing.T) {
	spec := RouteSpec{ID: "k8s-router.a", Hosts: []string{"a.example"}, Dials: []string{"10.0.0.1:80"}}
	settings := ProxySettings{TryDuration: -1, StreamCloseDelay: -1, KeepAliveIdle: -1}.withDefaults()

	data, err := json.Marshal(buildRoute(spec, settings))
	if err != nil {
		t.Fatalf("encoding route: %v", err)
	}

	for _, key := range []string{"load_balancing", "stream_close_delay", "keep_alive"} {
		if strings.Contains(string(data), key) {
			t.Errorf("route JSON %s contains %q", data, key)
		}
	}
	// the transport is always named, because routes on Caddy's default
	// transport leak connections on every reload
	if !strings.Contains(string(data), `"transport":{"protocol":"http"}`) {
		t.Errorf("route JSON %s lacks the http transport", data)
	}
}

func TestBuildRouteDuration(t *testing.T) {
	spec := RouteSpec{ID: "k8s-router.a", Hosts: []string{"a.example"}, Dials: []string{"10.0.0.1:80"}}
	settings := ProxySettings{StreamCloseDelay: 90 * time.Second}.withDefaults()

	data, err := json.Marshal(buildRoute(spec, settings))
	if err != nil {
		t.Fatalf("encoding route: %v", err)
	}

	if !strings.Contains(string(data), `"stream_close_delay":"1m30s"`) {
		t.Errorf("route JSON %s lacks stream_close_delay 1m30s", data)
	}
}

func TestDecodeOwnedRoute(t *testing.T) {
	spec := RouteSpec{ID: "k8s-router.a", Hosts: []string{"b.example", "a.example"}, Dials: []string{"10.0.0.2:80", "10.0.0.1:80"}}
	data, err := json.Marshal(buildRoute(spec, ProxySettings{}.withDefaults()))
	if err != nil {
		t.Fatalf("encoding route: %v", err)
	}

	got, err := decodeOwnedRoute(data)
	if err != nil {
		t.Fatalf("decodeOwnedRoute: %v", err)
	}

	if got.ID != spec.ID {
		t.Errorf("ID = %q, want %q", got.ID, spec.ID)
	}
	if want := []string{"a.example", "b.example"}; !slices.Equal(got.Hosts, want) {
		t.Errorf("Hosts = %q, want %q", got.Hosts, want)
	}
	if want := []string{"10.0.0.1:80", "10.0.0.2:80"}; !slices.Equal(got.Dials, want) {
		t.Errorf("Dials = %q, want %q", got.Dials, want)
	}
}

func TestSpecErrorMessage(t *testing.T) {
	err := &SpecError{RouteID: "k8s-router.a", Field: "Dials", Value: "::1:80", Reason: "bad"}

	if got, want := err.Error(), `invalid route spec: route "k8s-router.a": Dials value "::1:80": bad`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

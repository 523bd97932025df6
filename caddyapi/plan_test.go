package caddyapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// testRoute returns the route of an owned spec with default settings.
func testRoute(id, dial string) route {
	return buildRoute(RouteSpec{ID: id, Hosts: []string{"a.example"}, Dials: []string{dial}}, ProxySettings{}.withDefaults())
}

// rawRoutes encodes each route, or takes a string as raw JSON.
func rawRoutes(t *testing.T, elements ...any) []json.RawMessage {
	t.Helper()

	out := make([]json.RawMessage, 0, len(elements))
	for _, element := range elements {
		if s, ok := element.(string); ok {
			out = append(out, json.RawMessage(s))
			continue
		}
		data, err := json.Marshal(element)
		if err != nil {
			t.Fatalf("encoding route: %v", err)
		}
		out = append(out, data)
	}

	return out
}

// ids returns the @id of each element, or "-" for one without.
func ids(routes []json.RawMessage) string {
	out := make([]string, 0, len(routes))
	for _, raw := range routes {
		var header routeHeader
		_ = json.Unmarshal(raw, &header)
		if header.ID == "" {
			header.ID = "-"
		}
		out = append(out, header.ID)
	}

	return strings.Join(out, ",")
}

const (
	catchAll  = `{"@id":"catch-all","handle":[{"handler":"static_response","status_code":404}]}`
	headers   = `{"handle":[{"handler":"headers"}]}`
	notObject = `"not an object"`
)

func TestPlanRoutes(t *testing.T) {
	a := testRoute("k8s-router.a", "10.0.0.1:80")
	b := testRoute("k8s-router.b", "10.0.0.2:80")
	bNew := testRoute("k8s-router.b", "10.0.0.3:80")
	c := testRoute("k8s-router.c", "10.0.0.4:80")

	tests := []struct {
		name    string
		current []any
		desired []route
		order   string // ids of the new array
		changed bool
		added   []string
		updated []string
		removed []string
	}{
		{"empty array", nil, []route{a}, "k8s-router.a", true, []string{"k8s-router.a"}, nil, nil},
		{"before catch-all", []any{catchAll}, []route{a, b}, "k8s-router.a,k8s-router.b,catch-all", true, []string{"k8s-router.a", "k8s-router.b"}, nil, nil},
		{"unchanged", []any{a, b, catchAll}, []route{a, b}, "k8s-router.a,k8s-router.b,catch-all", false, nil, nil, nil},
		{"upstream replaced", []any{a, b, catchAll}, []route{a, bNew}, "k8s-router.a,k8s-router.b,catch-all", true, nil, []string{"k8s-router.b"}, nil},
		{"removed", []any{a, b, catchAll}, []route{b}, "k8s-router.b,catch-all", true, nil, nil, []string{"k8s-router.a"}},
		{"all removed", []any{a, catchAll}, nil, "catch-all", true, nil, nil, []string{"k8s-router.a"}},
		{"missing counts as removed", []any{catchAll}, nil, "catch-all", false, nil, nil, nil},
		{"block moved before others", []any{headers, a, catchAll}, []route{a}, "k8s-router.a,-,catch-all", true, nil, nil, nil},
		{"scattered owned routes gathered", []any{a, headers, c, catchAll}, []route{a, c}, "k8s-router.a,k8s-router.c,-,catch-all", true, nil, nil, nil},
		{"others keep their order", []any{catchAll, headers, notObject}, []route{a}, "k8s-router.a,catch-all,-,-", true, []string{"k8s-router.a"}, nil, nil},
		{"foreign prefix kept", []any{`{"@id":"other.a"}`}, []route{a}, "k8s-router.a,other.a", true, []string{"k8s-router.a"}, nil, nil},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planRoutes(rawRoutes(t, tt.current...), tt.desired, DefaultIDPrefix)
			if err != nil {
				t.Fatalf("planRoutes: %v", err)
			}

			if got := ids(p.routes); got != tt.order {
				t.Errorf("order = %s, want %s", got, tt.order)
			}
			if p.changed != tt.changed {
				t.Errorf("changed = %v, want %v", p.changed, tt.changed)
			}
			if !slices.Equal(p.added, tt.added) {
				t.Errorf("added = %q, want %q", p.added, tt.added)
			}
			if !slices.Equal(p.updated, tt.updated) {
				t.Errorf("updated = %q, want %q", p.updated, tt.updated)
			}
			if !slices.Equal(p.removed, tt.removed) {
				t.Errorf("removed = %q, want %q", p.removed, tt.removed)
			}
		})
	}
}

func TestPlanRoutesKeepsOthersVerbatim(t *testing.T) {
	other := `{"handle": [{"handler": "headers", "big": 12345678901234567890}]}`

	p, err := planRoutes(rawRoutes(t, other), []route{testRoute("k8s-router.a", "10.0.0.1:80")}, DefaultIDPrefix)
	if err != nil {
		t.Fatalf("planRoutes: %v", err)
	}

	if got := string(p.routes[1]); got != other {
		t.Errorf("other route = %s, want it byte for byte: %s", got, other)
	}
}

func TestPlanRoutesSemanticEquality(t *testing.T) {
	a := testRoute("k8s-router.a", "10.0.0.1:80")
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatalf("encoding route: %v", err)
	}

	// Caddy re-encodes with sorted keys: decode into a map and encode again
	var decoded map[string]any
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatalf("decoding route: %v", err)
	}
	reencoded, err := json.MarshalIndent(decoded, "", "  ")
	if err != nil {
		t.Fatalf("encoding route: %v", err)
	}
	if string(reencoded) == string(data) {
		t.Fatal("re-encoded route equals the original bytes; the test needs different bytes")
	}

	p, err := planRoutes([]json.RawMessage{reencoded}, []route{a}, DefaultIDPrefix)
	if err != nil {
		t.Fatalf("planRoutes: %v", err)
	}

	if p.changed {
		t.Error("changed = true for a route that differs only in key order and whitespace")
	}
	if len(p.updated) != 0 {
		t.Errorf("updated = %q, want none", p.updated)
	}
}

func TestJSONEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":2}`, `{"b":2, "a":1}`, true},
		{`[1,2]`, `[2,1]`, false},
		{`{"a":1}`, `{"a":1.0}`, true},
		{`{"a":"1"}`, `{"a":1}`, false},
		{`{`, `{`, true},
		{`{`, `{}`, false},
	}

	for _, tt := range tests {
		if got := jsonEqual(json.RawMessage(tt.a), json.RawMessage(tt.b)); got != tt.want {
			t.Errorf("jsonEqual(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

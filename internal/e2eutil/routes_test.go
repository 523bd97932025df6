package e2eutil

import (
	"slices"
	"testing"
)

func TestDiffRoutes(t *testing.T) {
	web := Route{ID: "k8s-router.ns.web", Hosts: []string{"web.example.test"}, Dials: []string{"10.0.0.1:8080"}}
	moved := Route{ID: web.ID, Hosts: web.Hosts, Dials: []string{"10.0.0.1:9090"}}
	api := Route{ID: "k8s-router.ns.api", Hosts: []string{"api.example.test"}, Dials: []string{"10.0.0.2:8080"}}

	tests := []struct {
		name      string
		got, want []Route
		wantDiff  string
	}{
		{name: "equal", got: []Route{api, web}, want: []Route{api, web}},
		{name: "both empty"},
		{name: "missing", got: []Route{web}, want: []Route{api, web}, wantDiff: "missing: " + api.String()},
		{name: "unexpected", got: []Route{api, web}, want: []Route{web}, wantDiff: "unexpected: " + api.String()},
		{name: "different", got: []Route{moved}, want: []Route{web}, wantDiff: "different: " + moved.String() + ", want " + web.String()},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DiffRoutes(tt.got, tt.want); got != tt.wantDiff {
				t.Errorf("DiffRoutes() = %q, want %q", got, tt.wantDiff)
			}
		})
	}
}

func TestOwned(t *testing.T) {
	routes := []Route{{ID: "foreign"}, {ID: "k8s-router.b.web"}, {}, {ID: "k8s-router.a.web"}, {ID: "catch-all"}}

	got := IDs(Owned(routes, "k8s-router."))

	if want := []string{"k8s-router.a.web", "k8s-router.b.web"}; !slices.Equal(got, want) {
		t.Errorf("Owned() ids = %q, want %q", got, want)
	}
}

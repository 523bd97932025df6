package routing

import (
	"strings"
	"testing"
)

func TestRouteID(t *testing.T) {
	tests := []struct {
		name      string
		prefix    string
		namespace string
		depName   string
		want      string
	}{
		{name: "default prefix", prefix: DefaultRouteIDPrefix, namespace: "team", depName: "ws1", want: "k8s-router.team.ws1"},
		{name: "dotted name", prefix: DefaultRouteIDPrefix, namespace: "team", depName: "a.b", want: "k8s-router.team.a.b"},
		{name: "other prefix", prefix: "r-", namespace: "team", depName: "ws1", want: "r-team.ws1"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RouteID(tt.prefix, tt.namespace, tt.depName)
			if got != tt.want {
				t.Errorf("RouteID(%q, %q, %q) = %q, want %q", tt.prefix, tt.namespace, tt.depName, got, tt.want)
			}
		})
	}
}

func TestParseRouteID(t *testing.T) {
	tests := []struct {
		name          string
		prefix        string
		id            string
		wantNamespace string
		wantName      string
		wantOK        bool
	}{
		{name: "simple", prefix: DefaultRouteIDPrefix, id: "k8s-router.team.ws1", wantNamespace: "team", wantName: "ws1", wantOK: true},
		{name: "dotted name", prefix: DefaultRouteIDPrefix, id: "k8s-router.team.a.b", wantNamespace: "team", wantName: "a.b", wantOK: true},
		{name: "empty prefix", prefix: "", id: "team.ws1", wantNamespace: "team", wantName: "ws1", wantOK: true},
		{name: "other prefix", prefix: DefaultRouteIDPrefix, id: "other.team.ws1"},
		{name: "prefix only", prefix: DefaultRouteIDPrefix, id: "k8s-router."},
		{name: "no dot", prefix: DefaultRouteIDPrefix, id: "k8s-router.team"},
		{name: "empty namespace", prefix: DefaultRouteIDPrefix, id: "k8s-router..ws1"},
		{name: "empty name", prefix: DefaultRouteIDPrefix, id: "k8s-router.team."},
		{name: "slash", prefix: DefaultRouteIDPrefix, id: "k8s-router.team.a/b"},
		{name: "upper case", prefix: DefaultRouteIDPrefix, id: "k8s-router.Team.ws1"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			namespace, name, ok := ParseRouteID(tt.prefix, tt.id)

			if ok != tt.wantOK {
				t.Fatalf("ParseRouteID(%q, %q) ok = %v, want %v", tt.prefix, tt.id, ok, tt.wantOK)
			}
			if namespace != tt.wantNamespace {
				t.Errorf("namespace = %q, want %q", namespace, tt.wantNamespace)
			}
			if name != tt.wantName {
				t.Errorf("name = %q, want %q", name, tt.wantName)
			}
		})
	}
}

func TestValidateRouteIDPrefix(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		wantErr string
	}{
		{name: "default", prefix: DefaultRouteIDPrefix},
		{name: "no separator", prefix: "router"},
		{name: "empty", prefix: "", wantErr: "route id prefix is empty"},
		{name: "slash", prefix: "k8s/router.", wantErr: `route id prefix "k8s/router." contains '/'`},
		{name: "space", prefix: "k8s router.", wantErr: "contains whitespace"},
		{name: "tab", prefix: "k8s\t.", wantErr: "contains whitespace"},
		{name: "control", prefix: "k8s\x00.", wantErr: "control character"},
		{name: "question mark", prefix: "k8s?.", wantErr: "contains '?'"},
		{name: "percent", prefix: "k8s%2F.", wantErr: "contains '%'"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRouteIDPrefix(tt.prefix)

			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("ValidateRouteIDPrefix(%q) error = %v", tt.prefix, err)
				}
				return
			}

			if err == nil {
				t.Fatalf("ValidateRouteIDPrefix(%q) succeeded, want error containing %q", tt.prefix, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

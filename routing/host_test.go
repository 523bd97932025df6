package routing

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeBaseDomain(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "plain", in: "example.test", want: "example.test"},
		{name: "upper case", in: "WS.Example.TEST", want: "ws.example.test"},
		{name: "trailing dot", in: "example.test.", want: "example.test"},
		{name: "single label", in: "localhost", want: "localhost"},
		{name: "label of 63", in: strings.Repeat("a", 63) + ".test", want: strings.Repeat("a", 63) + ".test"},
		{name: "empty", in: "", wantErr: `base domain "" is empty`},
		{name: "only a dot", in: ".", wantErr: `base domain "." is empty`},
		{name: "two trailing dots", in: "example.test..", wantErr: `base domain "example.test.." is invalid`},
		{name: "wildcard", in: "*.example.test", wantErr: `base domain "*.example.test" is a wildcard`},
		{name: "ipv4", in: "10.0.0.1", wantErr: `base domain "10.0.0.1" is an IP address`},
		{name: "ipv4 trailing dot", in: "10.0.0.1.", wantErr: `is an IP address`},
		{name: "ipv4 leading zero", in: "10.0.0.01", wantErr: `is an IP address`},
		{name: "ipv6", in: "::1", wantErr: `base domain "::1" is an IP address`},
		{name: "underscore", in: "my_domain.test", wantErr: `base domain "my_domain.test" is invalid`},
		{name: "leading dot", in: ".example.test", wantErr: "is invalid"},
		{name: "space", in: " example.test", wantErr: "is invalid"},
		{name: "scheme", in: "https://example.test", wantErr: "is invalid"},
		{name: "label of 64", in: strings.Repeat("a", 64) + ".test", wantErr: "is longer than 63 characters"},
		{name: "longer than 253", in: strings.Repeat("abcdefghi.", 26) + "test", wantErr: "at most 253 characters"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeBaseDomain(tt.in)

			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("NormalizeBaseDomain(%q) = %q, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "expected") {
					t.Errorf("error = %q, want it to say what is expected", err)
				}
				return
			}

			if err != nil {
				t.Fatalf("NormalizeBaseDomain(%q) error = %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeBaseDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewNamer(t *testing.T) {
	tests := []struct {
		name       string
		baseDomain string
		template   string
		wantErr    string
	}{
		{name: "default", baseDomain: "example.test", template: DefaultHostTemplate},
		{name: "namespace", baseDomain: "example.test", template: "{name}-{namespace}"},
		{name: "two labels", baseDomain: "example.test", template: "{name}.{namespace}"},
		{name: "literal text", baseDomain: "example.test", template: "ws-{name}"},
		{name: "bad base domain", baseDomain: "*.example.test", template: DefaultHostTemplate, wantErr: "is a wildcard"},
		{name: "empty template", baseDomain: "example.test", template: "", wantErr: `host template "" must contain {name}`},
		{name: "without name", baseDomain: "example.test", template: "{namespace}", wantErr: "must contain {name}"},
		{name: "unknown placeholder", baseDomain: "example.test", template: "{name}-{user}", wantErr: "unknown placeholder {user}"},
		{name: "unclosed brace", baseDomain: "example.test", template: "{name}-{namespace", wantErr: "unclosed '{'"},
		{name: "stray closing brace", baseDomain: "example.test", template: "{name}}", wantErr: "'}' without a matching '{'"},
		{name: "nested braces", baseDomain: "example.test", template: "{{name}}", wantErr: "unknown placeholder {{name}"},
		{name: "upper case literal", baseDomain: "example.test", template: "WS-{name}", wantErr: "not a DNS-1123 subdomain"},
		{name: "underscore literal", baseDomain: "example.test", template: "{name}_ws", wantErr: "not a DNS-1123 subdomain"},
		{name: "trailing dot", baseDomain: "example.test", template: "{name}.", wantErr: "not a DNS-1123 subdomain"},
		{name: "leading hyphen", baseDomain: "example.test", template: "-{name}", wantErr: "not a DNS-1123 subdomain"},
		{name: "literal label too long", baseDomain: "example.test", template: "{name}." + strings.Repeat("x", 64), wantErr: "cannot form any host"},
		{name: "base domain too long", baseDomain: strings.Repeat("abcdefghi.", 25) + "xy", template: "{name}", wantErr: "cannot form any host"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			namer, err := NewNamer(tt.baseDomain, tt.template)

			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("NewNamer(%q, %q) succeeded, want error containing %q", tt.baseDomain, tt.template, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}

			if err != nil {
				t.Fatalf("NewNamer(%q, %q) error = %v", tt.baseDomain, tt.template, err)
			}
			if namer.Template() != tt.template {
				t.Errorf("Template() = %q, want %q", namer.Template(), tt.template)
			}
		})
	}
}

func TestNamerBaseDomain(t *testing.T) {
	namer, err := NewNamer("Example.TEST.", DefaultHostTemplate)
	if err != nil {
		t.Fatal(err)
	}

	if got := namer.BaseDomain(); got != "example.test" {
		t.Errorf("BaseDomain() = %q, want %q", got, "example.test")
	}
}

func TestNamerHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)

	tests := []struct {
		name      string
		template  string
		namespace string
		depName   string
		want      string
		wantErr   string
	}{
		{name: "default", template: "{name}", namespace: "team", depName: "ws1", want: "ws1.example.test"},
		{name: "namespace ignored", template: "{name}", namespace: "", depName: "ws1", want: "ws1.example.test"},
		{name: "name and namespace", template: "{name}-{namespace}", namespace: "team", depName: "ws1", want: "ws1-team.example.test"},
		{name: "namespace label", template: "{name}.{namespace}", namespace: "team", depName: "ws1", want: "ws1.team.example.test"},
		{name: "name twice", template: "{name}-{name}", namespace: "team", depName: "ws1", want: "ws1-ws1.example.test"},
		{name: "name of 63", template: "{name}", namespace: "team", depName: label63, want: label63 + ".example.test"},
		{
			name: "name with dot", template: "{name}", namespace: "team", depName: "a.b",
			wantErr: `deployment name "a.b" cannot form a host: must be a DNS-1123 label (lower case letters, digits and '-', at most 63 characters, no dots); no route will be created`,
		},
		{name: "empty name", template: "{name}", namespace: "team", depName: "", wantErr: `deployment name "" cannot form a host`},
		{name: "name of 64", template: "{name}", namespace: "team", depName: label63 + "a", wantErr: "cannot form a host: must be a DNS-1123 label"},
		{name: "upper case name", template: "{name}", namespace: "team", depName: "WS1", wantErr: `deployment name "WS1" cannot form a host`},
		{name: "empty namespace used", template: "{name}-{namespace}", namespace: "", depName: "ws1", wantErr: `namespace "" cannot form a host`},
		{name: "joined label too long", template: "{name}-{namespace}", namespace: "team", depName: label63, wantErr: "is longer than 63 characters; no route will be created"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			namer, err := NewNamer("example.test", tt.template)
			if err != nil {
				t.Fatal(err)
			}

			got, err := namer.Host(tt.namespace, tt.depName)

			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Host(%q, %q) = %q, want error containing %q", tt.namespace, tt.depName, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				var hostErr *HostError
				if !errors.As(err, &hostErr) {
					t.Errorf("error %T is not a *HostError", err)
				}
				return
			}

			if err != nil {
				t.Fatalf("Host(%q, %q) error = %v", tt.namespace, tt.depName, err)
			}
			if got != tt.want {
				t.Errorf("Host(%q, %q) = %q, want %q", tt.namespace, tt.depName, got, tt.want)
			}
		})
	}
}

func TestNamerHostTooLong(t *testing.T) {
	// 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 fits, one more character does not.
	baseDomain := strings.Repeat("b", 63) + "." + strings.Repeat("c", 61)
	namer, err := NewNamer(baseDomain, "{name}.{namespace}")
	if err != nil {
		t.Fatal(err)
	}
	label63 := strings.Repeat("a", 63)

	host, err := namer.Host(label63, label63)
	if err != nil {
		t.Fatalf("Host of 253 characters error = %v", err)
	}
	if len(host) != 253 {
		t.Errorf("len(host) = %d, want 253", len(host))
	}

	namer, err = NewNamer(baseDomain+"c", "{name}.{namespace}")
	if err != nil {
		t.Fatal(err)
	}

	_, err = namer.Host(label63, label63)
	if err == nil {
		t.Fatal("Host of 254 characters succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "is 254 characters long, more than the maximum of 253") {
		t.Errorf("error = %q, want it to give the length and the maximum", err)
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		template string
		want     string
	}{
		{template: "{name}", want: "ws1"},
		{template: "{name}-{namespace}", want: "ws1-team"},
		{template: "x{namespace}.{name}y", want: "xteam.ws1y"},
		{template: "{name}{name}", want: "ws1ws1"},
		{template: "{nam{name}", want: "{namws1"},
		{template: "plain", want: "plain"},
	}

	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			if got := expand(tt.template, "team", "ws1"); got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.template, got, tt.want)
			}
		})
	}
}

func TestExpandOnePass(t *testing.T) {
	got := expand("{name}-{namespace}", "ns", "{namespace}")

	if want := "{namespace}-ns"; got != want {
		t.Errorf("expand = %q, want %q", got, want)
	}
}

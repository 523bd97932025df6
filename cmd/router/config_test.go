package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/caddy-k8s-router/caddy-k8s-router/caddyapi"
)

func envOf(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseConfig([]string{"--namespace=gitspaces", "--base-domain=Example.TEST."}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	if len(cfg.namespaces) != 1 || cfg.namespaces[0] != "gitspaces" {
		t.Errorf("namespaces = %q, want [gitspaces]", cfg.namespaces)
	}
	if cfg.baseDomain != "example.test" {
		t.Errorf("baseDomain = %q, want the normalised example.test", cfg.baseDomain)
	}
	if cfg.defaultPort != 8089 {
		t.Errorf("defaultPort = %d, want 8089", cfg.defaultPort)
	}
	if cfg.caddyAdmin != caddyapi.DefaultAdminURL {
		t.Errorf("caddyAdmin = %q, want %q", cfg.caddyAdmin, caddyapi.DefaultAdminURL)
	}
	if cfg.caddyServer != "srv0" {
		t.Errorf("caddyServer = %q, want srv0", cfg.caddyServer)
	}
	if cfg.webhookPort != 9443 {
		t.Errorf("webhookPort = %d, want 9443", cfg.webhookPort)
	}
	if cfg.driftInterval != 10*time.Second {
		t.Errorf("driftInterval = %s, want 10s", cfg.driftInterval)
	}
	if cfg.proxy.TryDuration != caddyapi.DefaultTryDuration {
		t.Errorf("proxy.TryDuration = %s, want %s", cfg.proxy.TryDuration, caddyapi.DefaultTryDuration)
	}
}

func TestParseConfigEnvironmentFallback(t *testing.T) {
	env := envOf(map[string]string{
		"K8S_NAMESPACE":    "a, b,a",
		"K8S_BASE_DOMAIN":  "example.test",
		"K8S_DEFAULT_PORT": "8080",
		"KUBECONFIG":       "/tmp/kubeconfig",
		"CADDY_ADMIN_URL":  "unix//run/caddy/admin.sock",
	})
	cfg, err := parseConfig([]string{"--default-port=9000"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	if strings.Join(cfg.namespaces, ",") != "a,b" {
		t.Errorf("namespaces = %q, want [a b] without the duplicate", cfg.namespaces)
	}
	if cfg.defaultPort != 9000 {
		t.Errorf("defaultPort = %d, want the flag's 9000 over the environment's 8080", cfg.defaultPort)
	}
	if cfg.kubeconfig != "/tmp/kubeconfig" {
		t.Errorf("kubeconfig = %q, want /tmp/kubeconfig", cfg.kubeconfig)
	}
	if cfg.caddyAdmin != "unix//run/caddy/admin.sock" {
		t.Errorf("caddyAdmin = %q", cfg.caddyAdmin)
	}
}

func TestParseConfigAllNamespaces(t *testing.T) {
	cfg, err := parseConfig([]string{"--namespace=*", "--base-domain=example.test"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.namespaces) != 1 || cfg.namespaces[0] != "" {
		t.Errorf("namespaces = %q, want [\"\"] for all namespaces", cfg.namespaces)
	}
}

func TestParseConfigZeroProxySettings(t *testing.T) {
	args := []string{"--namespace=a", "--base-domain=example.test", "--try-duration=0", "--stream-close-delay=0s"}
	cfg, err := parseConfig(args, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	// caddyapi leaves a negative setting out of the route, so Caddy's own
	// default applies
	if cfg.proxy.TryDuration >= 0 {
		t.Errorf("proxy.TryDuration = %s, want negative for Caddy's default", cfg.proxy.TryDuration)
	}
	if cfg.proxy.StreamCloseDelay >= 0 {
		t.Errorf("proxy.StreamCloseDelay = %s, want negative for Caddy's default", cfg.proxy.StreamCloseDelay)
	}
}

func TestParseConfigErrors(t *testing.T) {
	valid := []string{"--namespace=a", "--base-domain=example.test"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"namespace missing", []string{"--base-domain=example.test"}, nil, []string{"--namespace", "required"}},
		{"namespace invalid", []string{"--namespace=Bad_NS", "--base-domain=example.test"}, nil, []string{"--namespace", `"Bad_NS"`, "DNS-1123"}},
		{"namespace star in list", []string{"--namespace=a,*", "--base-domain=example.test"}, nil, []string{"--namespace", "* alone"}},
		{"base domain missing", []string{"--namespace=a"}, nil, []string{"--base-domain", "required"}},
		{"base domain wildcard", []string{"--namespace=a", "--base-domain=*.example.test"}, nil, []string{"--base-domain", "*.example.test"}},
		{"base domain IP", []string{"--namespace=a", "--base-domain=10.0.0.1"}, nil, []string{"--base-domain", "10.0.0.1"}},
		{"port from env", nil, map[string]string{"K8S_NAMESPACE": "a", "K8S_BASE_DOMAIN": "example.test", "K8S_DEFAULT_PORT": "abc"}, []string{"K8S_DEFAULT_PORT", `"abc"`, "1 to 65535"}},
		{"port zero", append(valid, "--default-port=0"), nil, []string{"--default-port", `"0"`}},
		{"port too large", append(valid, "--default-port=70000"), nil, []string{"--default-port", `"70000"`}},
		{"log level", append(valid, "--log-level=loud"), nil, []string{"--log-level", `"loud"`, "debug, info, warn or error"}},
		{"log format", append(valid, "--log-format=xml"), nil, []string{"--log-format", `"xml"`, `"json"`}},
		{"ip family", append(valid, "--ip-family=ipv4"), nil, []string{"--ip-family", `"ipv4"`, `"IPv4"`}},
		{"drift interval", append(valid, "--drift-interval=fast"), nil, []string{"--drift-interval", `"fast"`, "duration"}},
		{"host template", append(valid, "--host-template={nam}"), nil, []string{"--host-template", "{nam}"}},
		{"route id prefix", append(valid, "--route-id-prefix=a/b"), nil, []string{"--route-id-prefix", "a/b"}},
		{"stray argument", append(valid, "extra"), nil, []string{`"extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, envOf(tt.env), io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestRunInvalidConfigExitsTwo(t *testing.T) {
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"--namespace=a", "--base-domain=example.test", "--default-port=-1"}, envOf(nil), &stderr)

	if code != exitConfig {
		t.Errorf("exit code = %d, want %d", code, exitConfig)
	}
	if !strings.Contains(stderr.String(), "--default-port") {
		t.Errorf("stderr %q does not name the flag", stderr.String())
	}
}

func TestRunHelpExitsZero(t *testing.T) {
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"-h"}, envOf(nil), &stderr)

	if code != exitOK {
		t.Errorf("exit code = %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "K8S_BASE_DOMAIN") {
		t.Errorf("help text does not list the environment variables: %q", stderr.String())
	}
}

func TestParseConfigBooleanFlagAlone(t *testing.T) {
	cfg, err := parseConfig([]string{"--namespace=a", "--base-domain=example.test", "--write-per-change"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.writePerChange {
		t.Error("writePerChange = false after --write-per-change, want true")
	}
}

package caddyapi

import (
	"strings"
	"testing"
	"time"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // a part of the error message
	}{
		{"https scheme", Config{AdminURL: "https://localhost:2019"}, `scheme "https"`},
		{"no port", Config{AdminURL: "http://localhost"}, "no host and port"},
		{"port zero", Config{AdminURL: "http://localhost:0"}, `invalid port "0"`},
		{"path", Config{AdminURL: "http://localhost:2019/config"}, "has a path"},
		{"bare host", Config{AdminURL: "localhost:2019"}, `scheme "localhost"`},
		{"empty socket", Config{AdminURL: "unix/"}, "no socket path"},
		{"prefix with slash", Config{IDPrefix: "k8s/router."}, `contains '/'`},
		{"prefix with space", Config{IDPrefix: "k8s router."}, "whitespace"},
		{"server with slash", Config{Server: "srv0/routes"}, `server name "srv0/routes"`},
		{"subroute with percent", Config{SubrouteID: "a%2f"}, `subroute id "a%2f"`},
		{"subroute with prefix", Config{SubrouteID: "k8s-router.block"}, "starts with the route id prefix"},
		{"negative timeout", Config{Timeout: -time.Second}, "timeout -1s is negative"},
		{"negative attempts", Config{MaxAttempts: -1}, "max attempts -1"},
		{"negative body limit", Config{MaxResponseBytes: -1}, "max response bytes -1"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New returned no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	if c.cfg.AdminURL != DefaultAdminURL {
		t.Errorf("AdminURL = %q, want %q", c.cfg.AdminURL, DefaultAdminURL)
	}
	if c.cfg.Server != DefaultServer {
		t.Errorf("Server = %q, want %q", c.cfg.Server, DefaultServer)
	}
	if c.cfg.IDPrefix != DefaultIDPrefix {
		t.Errorf("IDPrefix = %q, want %q", c.cfg.IDPrefix, DefaultIDPrefix)
	}
	if c.cfg.Timeout != DefaultTimeout {
		t.Errorf("Timeout = %v, want %v", c.cfg.Timeout, DefaultTimeout)
	}
	if c.cfg.Proxy.StreamCloseDelay != DefaultStreamCloseDelay {
		t.Errorf("StreamCloseDelay = %v, want %v", c.cfg.Proxy.StreamCloseDelay, DefaultStreamCloseDelay)
	}
	if c.endpoint.host != "localhost:2019" {
		t.Errorf("Host = %q, want localhost:2019", c.endpoint.host)
	}
	if c.endpoint.origin != "http://localhost:2019" {
		t.Errorf("Origin = %q, want http://localhost:2019", c.endpoint.origin)
	}
}

func TestNewUnixSocket(t *testing.T) {
	c, err := New(Config{AdminURL: "unix//run/caddy/admin.sock"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	if c.endpoint.socket != "/run/caddy/admin.sock" {
		t.Errorf("socket = %q, want /run/caddy/admin.sock", c.endpoint.socket)
	}
	if c.endpoint.origin != "" {
		t.Errorf("Origin = %q, want none on a unix socket", c.endpoint.origin)
	}
}

func TestNewSharesLockPerURL(t *testing.T) {
	a, err := New(Config{AdminURL: "http://localhost:2019"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b, err := New(Config{AdminURL: "http://LOCALHOST:2019"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	other, err := New(Config{AdminURL: "http://localhost:2020"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	if a.lock != b.lock {
		t.Error("clients of the same admin URL have different locks")
	}
	if a.lock == other.lock {
		t.Error("clients of different admin URLs share a lock")
	}
}

func TestProxySettingsDefaults(t *testing.T) {
	got := ProxySettings{TryDuration: -1, StreamCloseDelay: time.Minute}.withDefaults()

	if got.TryDuration != 0 {
		t.Errorf("TryDuration = %v, want 0 for a negative value", got.TryDuration)
	}
	if got.TryInterval != DefaultTryInterval {
		t.Errorf("TryInterval = %v, want %v", got.TryInterval, DefaultTryInterval)
	}
	if got.StreamCloseDelay != time.Minute {
		t.Errorf("StreamCloseDelay = %v, want 1m", got.StreamCloseDelay)
	}
	if got.KeepAliveIdle != DefaultKeepAliveIdle {
		t.Errorf("KeepAliveIdle = %v, want %v", got.KeepAliveIdle, DefaultKeepAliveIdle)
	}
}

package caddyapi

import (
	"errors"
	"io"
	"testing"
)

func TestErrorMessage(t *testing.T) {
	err := &Error{
		Kind:       ErrForbidden,
		AdminURL:   "http://localhost:2019",
		Method:     "GET",
		Path:       "/config/apps/http/servers/srv0",
		StatusCode: 403,
		Message:    "host not allowed: localhost:2019",
		Hint:       "set the admin URL",
	}

	want := "caddy admin API rejected the Host or Origin header: GET http://localhost:2019/config/apps/http/servers/srv0: " +
		"status 403: host not allowed: localhost:2019 (set the admin URL)"
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

func TestErrorMatchesKindAndCause(t *testing.T) {
	err := error(&Error{Kind: ErrUnreachable, Err: io.ErrUnexpectedEOF})

	if !errors.Is(err, ErrUnreachable) {
		t.Error("error does not match its kind")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("error does not match its cause")
	}
	if errors.Is(err, ErrConflict) {
		t.Error("error matches another kind")
	}
}

func TestCaddyMessage(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"error":"unknown object ID 'x'"}` + "\n", "unknown object ID 'x'"},
		{"  plain text\n", "plain text"},
		{"", ""},
	}

	for _, tt := range tests {
		if got := caddyMessage([]byte(tt.body)); got != tt.want {
			t.Errorf("caddyMessage(%q) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

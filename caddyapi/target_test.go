package caddyapi

import "testing"

func TestEtagPath(t *testing.T) {
	tests := []struct {
		etag string
		path string // "" when the Etag is invalid
	}{
		{`"/config/apps/http/servers/srv0 3f2a9c"`, "/config/apps/http/servers/srv0"},
		{`"/config/apps/http/servers/srv0/routes/1/handle/0 00"`, "/config/apps/http/servers/srv0/routes/1/handle/0"},
		{`/config/apps/http/servers/srv0 3f2a9c`, ""},
		{`"/config/apps/http/servers/srv0"`, ""},
		{`"/id/x 3f2a9c"`, ""},
		{`W/"/config/x 3f2a9c"`, ""},
		{``, ""},
	}

	for _, tt := range tests {
		path, ok := etagPath(tt.etag)
		if path != tt.path || ok != (tt.path != "") {
			t.Errorf("etagPath(%q) = %q, %v; want %q", tt.etag, path, ok, tt.path)
		}
	}
}

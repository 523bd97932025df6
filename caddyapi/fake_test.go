package caddyapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeServerPath is the config path of the one server the fake stores.
const fakeServerPath = "/config/apps/http/servers/srv0"

// fakeCaddy is an admin API on httptest that stores one server, srv0. For
// the requests the client sends it behaves as Caddy v2.11.9 does: GET of the
// server returns an Etag "<path> <hash>", and PATCH or PUT of its routes is
// checked against If-Match. Integration tests cover the real Caddy; the fake
// lets unit tests inject faults that Caddy does not produce on demand.
type fakeCaddy struct {
	*httptest.Server

	mu sync.Mutex
	// server is the stored srv0 object, or nil when the server is missing.
	server map[string]any
	// requests records each request as "METHOD path".
	requests []string
	// headers records the headers of each request.
	headers []http.Header
	// writes counts the writes that changed the stored server.
	writes int
	// intercept, when set, runs first and handles the request when it
	// returns true.
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

// newFakeCaddy starts a fake whose srv0 has the given routes JSON array, or
// no "routes" key when routesJSON is empty.
func newFakeCaddy(t *testing.T, routesJSON string) *fakeCaddy {
	t.Helper()

	f := &fakeCaddy{server: map[string]any{"listen": []any{":80"}}}
	if routesJSON != "" {
		var routes any
		if err := json.Unmarshal([]byte(routesJSON), &routes); err != nil {
			t.Fatalf("decoding fake routes: %v", err)
		}
		f.server["routes"] = routes
	}

	f.Server = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	t.Cleanup(f.Close)

	return f
}

// client returns a Client for the fake with fast retries.
func (f *fakeCaddy) client(t *testing.T, cfg Config) *Client {
	t.Helper()

	cfg.AdminURL = f.URL
	return newTestClient(t, cfg)
}

// newTestClient returns a Client for cfg with a 1ns retry delay, unless cfg
// sets one, and a logger that writes to the test log.
func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()

	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 1
	}
	cfg.Logger = testLogger(t)

	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	return c
}

func (f *fakeCaddy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.headers = append(f.headers, r.Header.Clone())
	intercept := f.intercept
	f.mu.Unlock()

	if intercept != nil && intercept(w, r) {
		return
	}

	f.serveDefault(w, r)
}

// serveDefault handles a request as Caddy would, without intercept.
func (f *fakeCaddy) serveDefault(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()

	switch {
	case r.Method == http.MethodGet && r.URL.Path == fakeServerPath:
		data, _ := json.Marshal(f.server)
		if f.server == nil {
			data = []byte("null")
		}
		w.Header().Set("Etag", f.etagLocked())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(data, '\n'))

	case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && r.URL.Path == fakeServerPath+"/routes":
		f.writeRoutesLocked(w, r)

	default:
		writeCaddyError(w, http.StatusNotFound, "not found")
	}
}

// writeRoutesLocked stores the routes of a PATCH or PUT whose If-Match
// matches, as Caddy does.
func (f *fakeCaddy) writeRoutesLocked(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("If-Match") != f.etagLocked() {
		writeCaddyError(w, http.StatusPreconditionFailed, "If-Match header did not match current config hash")
		return
	}

	_, exists := f.server["routes"]
	if r.Method == http.MethodPatch && !exists {
		writeCaddyError(w, http.StatusNotFound, "key does not exist: routes")
		return
	}
	if r.Method == http.MethodPut && exists {
		writeCaddyError(w, http.StatusConflict, "key already exists: routes")
		return
	}

	body, _ := io.ReadAll(r.Body)
	var routes any
	if err := json.Unmarshal(body, &routes); err != nil {
		writeCaddyError(w, http.StatusBadRequest, "decoding request body: "+err.Error())
		return
	}

	f.server["routes"] = routes
	f.writes++
}

// etagLocked returns the Etag of the stored server.
func (f *fakeCaddy) etagLocked() string {
	data, _ := json.Marshal(f.server)
	sum := sha256.Sum256(data)

	return `"` + fakeServerPath + " " + hex.EncodeToString(sum[:8]) + `"`
}

// routeIDs returns the @id of each stored route, in order.
func (f *fakeCaddy) routeIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	routes, _ := f.server["routes"].([]any)
	ids := make([]string, 0, len(routes))
	for _, r := range routes {
		object, _ := r.(map[string]any)
		id, _ := object["@id"].(string)
		ids = append(ids, id)
	}

	return ids
}

// writeCount returns how many writes the fake stored.
func (f *fakeCaddy) writeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()

	return f.writes
}

// requestLog returns the recorded requests.
func (f *fakeCaddy) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	return append([]string(nil), f.requests...)
}

// writeCaddyError writes an error response in Caddy's format.
func writeCaddyError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message})
}

// testLogger returns a logger that writes to t.Log at debug level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter writes each log line to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))

	return len(p), nil
}

package caddyapi

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// The integration tests run the real Caddy from bin/ (see internal/testbed).
// Without the binary they skip, unless the CI variable is set.

// serverRoutesPath is the admin API path of srv0's routes.
const serverRoutesPath = "/config/apps/http/servers/srv0/routes"

// emptyRoutesConfig is a Caddy config whose srv0 has an empty routes array.
const emptyRoutesConfig = `{
  "admin": {"listen": "ADMIN_LISTEN", "config": {"persist": false}},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {"http": {"servers": {"srv0": {
    "listen": ["HTTP_LISTEN"], "automatic_https": {"disable": true}, "routes": []
  }}}}
}`

// noRoutesConfig is a Caddy config whose srv0 has no "routes" key.
const noRoutesConfig = `{
  "admin": {"listen": "ADMIN_LISTEN", "config": {"persist": false}},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {"http": {"servers": {"srv0": {
    "listen": ["HTTP_LISTEN"], "automatic_https": {"disable": true}
  }}}}
}`

// strictOriginsConfig allows only the Host 127.0.0.1:PORT on the admin API,
// so a client that addresses it as localhost:PORT gets 403.
const strictOriginsConfig = `{
  "admin": {"listen": "ADMIN_LISTEN", "origins": ["ADMIN_LISTEN"], "config": {"persist": false}},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {"http": {"servers": {"srv0": {
    "listen": ["HTTP_LISTEN"], "automatic_https": {"disable": true}, "routes": []
  }}}}
}`

// subrouteID is the @id of the managed subroute in subrouteConfig.
const subrouteID = "managed-routes"

// takenID is an owned-looking @id that subrouteConfig uses outside the
// managed subroute.
const takenID = "k8s-router.default.taken"

// subrouteConfig has, in order, an operator route that sets a header, the
// managed subroute, a route with @id takenID, and the catch-all.
const subrouteConfig = `{
  "admin": {"listen": "ADMIN_LISTEN", "config": {"persist": false}},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {"http": {"servers": {"srv0": {
    "listen": ["HTTP_LISTEN"], "automatic_https": {"disable": true},
    "routes": [
      {"@id": "operator-headers", "handle": [{"handler": "headers", "response": {"set": {"X-Operator": ["yes"]}}}]},
      {"handle": [{"handler": "subroute", "@id": "managed-routes", "routes": []}]},
      {"@id": "k8s-router.default.taken", "match": [{"host": ["taken.example.test"]}],
       "handle": [{"handler": "static_response", "body": "taken\n"}], "terminal": true},
      {"@id": "catch-all", "handle": [{"handler": "static_response", "status_code": 404, "body": "no route for this host\n"}]}
    ]
  }}}}
}`

// startCaddy starts Caddy with opts and stops it when the test ends.
func startCaddy(t *testing.T, opts testbed.CaddyOptions) *testbed.Caddy {
	t.Helper()

	caddy, err := testbed.StartCaddy(t.Context(), opts)
	if testbed.SkipIfMissing(err) {
		t.Skipf("skipping integration test: %v", err)
	}
	if err != nil {
		t.Fatalf("starting Caddy: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
	})

	return caddy
}

// startBackend starts a backend on ip with a free port and closes it when
// the test ends.
func startBackend(t *testing.T, ip, name string) *testbed.Backend {
	t.Helper()

	backend, err := testbed.StartBackend(ip, 0, name)
	if err != nil {
		t.Fatalf("starting backend: %v", err)
	}
	t.Cleanup(func() { _ = backend.Close() })

	return backend
}

// newClient returns a Client for caddy with fast retries.
func newClient(t *testing.T, caddy *testbed.Caddy, cfg Config) *Client {
	t.Helper()

	cfg.AdminURL = caddy.AdminURL
	return newTestClient(t, cfg)
}

// adminRequest sends one request to Caddy's admin API as another client
// would and returns the status, Etag and body. It repeats a request that
// gets no response, because the test bed's admin client keeps connections
// alive and Caddy closes them on every config change.
func adminRequest(t *testing.T, caddy *testbed.Caddy, method, path string, body []byte) (int, string, []byte) {
	t.Helper()

	var lastErr error
	for attempt := 1; attempt <= 5; attempt++ {
		status, etag, respBody, err := caddy.Admin(t.Context(), method, path, body)
		if err == nil {
			return status, etag, respBody
		}
		t.Logf("%s %s, attempt %d: %v", method, path, attempt, err)
		lastErr = err
	}
	t.Fatalf("%s %s: %v", method, path, lastErr)

	return 0, "", nil
}

// adminGet reads path from Caddy's admin API and returns the body and Etag.
func adminGet(t *testing.T, caddy *testbed.Caddy, path string) ([]byte, string) {
	t.Helper()

	status, etag, body := adminRequest(t, caddy, http.MethodGet, path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, status, body)
	}

	return body, etag
}

// routeIDs returns the @id of each route in the routes array at path, with
// "-" for a route without one.
func routeIDs(t *testing.T, caddy *testbed.Caddy, path string) []string {
	t.Helper()

	body, _ := adminGet(t, caddy, path)
	var routes []routeHeader
	if err := json.Unmarshal(body, &routes); err != nil {
		t.Fatalf("decoding routes at %s: %v", path, err)
	}

	ids := make([]string, 0, len(routes))
	for _, r := range routes {
		if r.ID == "" {
			r.ID = "-"
		}
		ids = append(ids, r.ID)
	}

	return ids
}

// getThroughCaddy sends a GET for host through srv0 and returns the status
// and body. It retries transport errors up to four times. On Linux, Caddy
// v2.11.9 opens a new SO_REUSEPORT listener on each reload and closes the
// old one and its idle keep-alive connections in the background. So a
// request sent just after a write can meet a reset or EOF.
func getThroughCaddy(t *testing.T, caddy *testbed.Caddy, host string) (int, string) {
	t.Helper()

	var lastErr error
	for attempt := 1; attempt <= 5; attempt++ {
		status, body, err := caddy.Get(t.Context(), host, "/")
		if err == nil {
			return status, body
		}
		t.Logf("GET %s, attempt %d: %v", host, attempt, err)
		lastErr = err
	}
	t.Fatalf("GET %s: %v", host, lastErr)

	return 0, ""
}

// requireProxied fails the test unless a request for host through Caddy
// returns 200 with the body of the named backend.
func requireProxied(t *testing.T, caddy *testbed.Caddy, host, backend string) {
	t.Helper()

	status, body := getThroughCaddy(t, caddy, host)
	if status != http.StatusOK || body != backend+"\n" {
		t.Errorf("GET %s = %d %q, want 200 %q", host, status, body, backend+"\n")
	}
}

// requireCatchAll fails the test unless a request for host through Caddy
// reaches the catch-all route.
func requireCatchAll(t *testing.T, caddy *testbed.Caddy, host string) {
	t.Helper()

	status, body := getThroughCaddy(t, caddy, host)
	if status != http.StatusNotFound || body != testbed.CatchAllBody {
		t.Errorf("GET %s = %d %q, want 404 %q", host, status, body, testbed.CatchAllBody)
	}
}

// spec returns a spec for host with the given dials.
func spec(id, host string, dials ...string) RouteSpec {
	return RouteSpec{ID: DefaultIDPrefix + id, Hosts: []string{host}, Dials: dials}
}

func TestIntegrationFirstRoute(t *testing.T) {
	tests := []struct {
		name   string
		config string
	}{
		{"empty routes array", emptyRoutesConfig},
		{"no routes key", noRoutesConfig},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caddy := startCaddy(t, testbed.CaddyOptions{Config: []byte(tt.config)})
			backend := startBackend(t, "127.0.0.1", "web-1")
			c := newClient(t, caddy, Config{})

			result, err := c.Apply(t.Context(), []RouteSpec{spec("default.web", "web.example.test", backend.Addr)})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}

			if !result.Written {
				t.Error("Written = false, want true")
			}
			if got := routeIDs(t, caddy, serverRoutesPath); !slices.Equal(got, []string{"k8s-router.default.web"}) {
				t.Errorf("route ids = %q, want only the new route", got)
			}
			requireProxied(t, caddy, "web.example.test", "web-1")
		})
	}
}

func TestIntegrationBeforeCatchAll(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{})

	result, err := c.Apply(t.Context(), []RouteSpec{
		spec("default.web", "web.example.test", backend.Addr),
		spec("default.api", "api.example.test", backend.Addr),
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if want := []string{"k8s-router.default.api", "k8s-router.default.web"}; !slices.Equal(result.Added, want) {
		t.Errorf("Added = %q, want %q", result.Added, want)
	}
	want := []string{"k8s-router.default.api", "k8s-router.default.web", testbed.CatchAllID}
	if got := routeIDs(t, caddy, serverRoutesPath); !slices.Equal(got, want) {
		t.Errorf("route ids = %q, want %q", got, want)
	}
	requireProxied(t, caddy, "web.example.test", "web-1")
	requireCatchAll(t, caddy, "other.example.test")
}

func TestIntegrationUpstreamsReplaced(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	first := startBackend(t, "127.0.0.1", "web-1")
	second := startBackend(t, "127.0.0.1", "web-2")
	c := newClient(t, caddy, Config{})
	if _, err := c.Apply(t.Context(), []RouteSpec{spec("default.web", "web.example.test", first.Addr)}); err != nil {
		t.Fatalf("first Apply: %v", err)
	}

	result, err := c.Apply(t.Context(), []RouteSpec{spec("default.web", "web.example.test", second.Addr)})
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}

	if want := []string{"k8s-router.default.web"}; !slices.Equal(result.Updated, want) {
		t.Errorf("Updated = %q, want %q", result.Updated, want)
	}
	if len(result.Added)+len(result.Removed) != 0 {
		t.Errorf("Added = %q, Removed = %q, want none", result.Added, result.Removed)
	}
	requireProxied(t, caddy, "web.example.test", "web-2")
}

func TestIntegrationRouteDeleted(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{})
	web := spec("default.web", "web.example.test", backend.Addr)
	api := spec("default.api", "api.example.test", backend.Addr)
	if _, err := c.Apply(t.Context(), []RouteSpec{web, api}); err != nil {
		t.Fatalf("first Apply: %v", err)
	}

	result, err := c.Apply(t.Context(), []RouteSpec{web})
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}

	if want := []string{api.ID}; !slices.Equal(result.Removed, want) {
		t.Errorf("Removed = %q, want %q", result.Removed, want)
	}
	if got, want := routeIDs(t, caddy, serverRoutesPath), []string{web.ID, testbed.CatchAllID}; !slices.Equal(got, want) {
		t.Errorf("route ids = %q, want %q", got, want)
	}
	requireCatchAll(t, caddy, "api.example.test")
	requireProxied(t, caddy, "web.example.test", "web-1")
}

func TestIntegrationMissingRouteCountsDeleted(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{})
	web := spec("default.web", "web.example.test", backend.Addr)
	if _, err := c.Apply(t.Context(), []RouteSpec{web}); err != nil {
		t.Fatalf("first Apply: %v", err)
	}

	// another client deletes the route first
	if status, _, body := adminRequest(t, caddy, http.MethodDelete, "/id/"+web.ID, nil); status != http.StatusOK {
		t.Fatalf("DELETE /id/%s: status %d: %s", web.ID, status, body)
	}

	result, err := c.Apply(t.Context(), nil)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if result.Written {
		t.Error("Written = true, want false for a route that is already gone")
	}
	owned, err := c.Owned(t.Context())
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}
	if len(owned) != 0 {
		t.Errorf("Owned = %+v, want none", owned)
	}
}

func TestIntegrationConcurrentWriterSurvives(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{})

	// another client inserts its route between the first read and write
	otherRoute := `{"@id":"other-client","match":[{"host":["other.example.test"]}],` +
		`"handle":[{"handler":"static_response","body":"other\n"}],"terminal":true}`
	c.afterRead = func(attempt int) {
		if attempt != 1 {
			return
		}
		status, _, body := adminRequest(t, caddy, http.MethodPut, serverRoutesPath+"/0", []byte(otherRoute))
		if status != http.StatusOK {
			t.Errorf("PUT of the other client's route: status %d: %s", status, body)
		}
	}

	result, err := c.Apply(t.Context(), []RouteSpec{spec("default.web", "web.example.test", backend.Addr)})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if result.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2 (a 412 and a retry)", result.Attempts)
	}
	if !result.Written {
		t.Error("Written = false, want true")
	}
	want := []string{"k8s-router.default.web", "other-client", testbed.CatchAllID}
	if got := routeIDs(t, caddy, serverRoutesPath); !slices.Equal(got, want) {
		t.Errorf("route ids = %q, want %q", got, want)
	}
	requireProxied(t, caddy, "web.example.test", "web-1")
}

func TestIntegrationUnchangedNoWrite(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{})
	specs := []RouteSpec{
		spec("default.web", "web.example.test", backend.Addr),
		spec("default.api", "api.example.test", backend.Addr),
	}
	if _, err := c.Apply(t.Context(), specs); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	_, before := adminGet(t, caddy, "/config/")

	// the same set in another order, with hosts in another case
	slices.Reverse(specs)
	specs[0].Hosts = []string{"API.example.test"}
	result, err := c.Apply(t.Context(), specs)
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}

	if result.Written {
		t.Error("Written = true, want false")
	}
	if result.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", result.Attempts)
	}
	if _, after := adminGet(t, caddy, "/config/"); after != before {
		t.Errorf("config Etag changed from %s to %s", before, after)
	}
}

func TestIntegrationIPv6Dial(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	backend := startBackend(t, "::1", "web-v6")
	c := newClient(t, caddy, Config{})
	if !strings.HasPrefix(backend.Addr, "[::1]:") {
		t.Fatalf("backend address = %q, want [::1]:PORT", backend.Addr)
	}

	web := spec("default.web", "web.example.test", backend.Addr)
	if _, err := c.Apply(t.Context(), []RouteSpec{web}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	body, _ := adminGet(t, caddy, "/id/"+web.ID+"/handle/0/upstreams/0/dial")
	if got, want := strings.TrimSpace(string(body)), `"`+backend.Addr+`"`; got != want {
		t.Errorf("stored dial = %s, want %s", got, want)
	}
	requireProxied(t, caddy, "web.example.test", "web-v6")
}

func TestIntegrationUnixSocket(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{AdminSocket: filepath.Join(t.TempDir(), "admin.sock")})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{})
	if !strings.HasPrefix(caddy.AdminURL, "unix/") {
		t.Fatalf("AdminURL = %q, want a unix socket", caddy.AdminURL)
	}

	if err := c.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, err := c.Apply(t.Context(), []RouteSpec{spec("default.web", "web.example.test", backend.Addr)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	requireProxied(t, caddy, "web.example.test", "web-1")
}

func TestIntegrationWrongHost(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{Config: []byte(strictOriginsConfig)})
	_, port, ok := strings.Cut(caddy.AdminAddr, ":")
	if !ok {
		t.Fatalf("AdminAddr = %q, want host:port", caddy.AdminAddr)
	}
	adminURL := "http://localhost:" + port
	c, err := New(Config{AdminURL: adminURL, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	err = c.Check(t.Context())

	apiErr := requireKind(t, err, ErrForbidden)
	if apiErr.StatusCode != http.StatusForbidden {
		t.Errorf("StatusCode = %d, want 403", apiErr.StatusCode)
	}
	if !strings.Contains(err.Error(), adminURL) {
		t.Errorf("error %q does not name the admin URL %s", err, adminURL)
	}
	if !strings.Contains(apiErr.Message, "host not allowed") {
		t.Errorf("Message = %q, want Caddy's message", apiErr.Message)
	}
}

func TestIntegrationServerMissing(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{})
	c := newClient(t, caddy, Config{Server: "srv9"})

	err := c.Check(t.Context())

	apiErr := requireKind(t, err, ErrMissing)
	if !strings.Contains(apiErr.Error(), "srv9") {
		t.Errorf("error %q does not name the server", apiErr)
	}
}

func TestIntegrationSubroute(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{Config: []byte(subrouteConfig)})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{SubrouteID: subrouteID})
	serverBefore := routeIDs(t, caddy, serverRoutesPath)

	result, err := c.Apply(t.Context(), []RouteSpec{spec("default.web", "web.example.test", backend.Addr)})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if !result.Written {
		t.Error("Written = false, want true")
	}
	if got, want := routeIDs(t, caddy, "/id/"+subrouteID+"/routes"), []string{"k8s-router.default.web"}; !slices.Equal(got, want) {
		t.Errorf("subroute ids = %q, want %q", got, want)
	}
	if got := routeIDs(t, caddy, serverRoutesPath); !slices.Equal(got, serverBefore) {
		t.Errorf("server route ids = %q, want them unchanged: %q", got, serverBefore)
	}
	requireProxied(t, caddy, "web.example.test", "web-1")
	requireCatchAll(t, caddy, "other.example.test")
}

func TestIntegrationSubrouteNotFound(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{Config: []byte(subrouteConfig)})

	tests := []struct {
		name string
		id   string
		want string // a part of the error message
	}{
		{"unknown id", "no-such-subroute", "unknown object ID"},
		{"not a subroute", "operator-headers", "not a subroute handler"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, caddy, Config{SubrouteID: tt.id})

			err := c.Check(t.Context())

			apiErr := requireKind(t, err, ErrMissing)
			if !strings.Contains(apiErr.Message, tt.want) {
				t.Errorf("Message = %q, want it to contain %q", apiErr.Message, tt.want)
			}
		})
	}
}

func TestIntegrationDuplicateIDRejected(t *testing.T) {
	caddy := startCaddy(t, testbed.CaddyOptions{Config: []byte(subrouteConfig)})
	backend := startBackend(t, "127.0.0.1", "web-1")
	c := newClient(t, caddy, Config{SubrouteID: subrouteID})

	// takenID is already used outside the subroute
	_, err := c.Apply(t.Context(), []RouteSpec{{ID: takenID, Hosts: []string{"web.example.test"}, Dials: []string{backend.Addr}}})

	apiErr := requireKind(t, err, ErrRejected)
	if apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("StatusCode = %d, want 400", apiErr.StatusCode)
	}
	if !strings.Contains(apiErr.Message, takenID) {
		t.Errorf("Message = %q, want it to name %s", apiErr.Message, takenID)
	}
	if got := routeIDs(t, caddy, "/id/"+subrouteID+"/routes"); len(got) != 0 {
		t.Errorf("subroute ids = %q, want none after a rejected write", got)
	}
}

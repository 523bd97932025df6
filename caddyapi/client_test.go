package caddyapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// catchAllJSON is a routes array with one catch-all route that the router
// does not own.
const catchAllJSON = `[{"@id":"catch-all","handle":[{"handler":"static_response","status_code":404}]}]`

// webSpec is a valid spec used across tests.
var webSpec = RouteSpec{ID: "k8s-router.default.web", Hosts: []string{"web.example.com"}, Dials: []string{"10.0.0.7:8080"}}

// requireKind fails the test unless err is an *Error of the given kind.
func requireKind(t *testing.T, err, kind error) *Error {
	t.Helper()

	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want kind %v", err, kind)
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v is not an *Error", err)
	}

	return apiErr
}

func TestApplyWritesBeforeCatchAll(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	c := fake.client(t, Config{})

	result, err := c.Apply(t.Context(), []RouteSpec{webSpec})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if !result.Written {
		t.Error("Written = false, want true")
	}
	if result.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", result.Attempts)
	}
	if got := strings.Join(result.Added, ","); got != webSpec.ID {
		t.Errorf("Added = %q, want %q", got, webSpec.ID)
	}
	if got, want := strings.Join(fake.routeIDs(), ","), webSpec.ID+",catch-all"; got != want {
		t.Errorf("route ids = %q, want %q", got, want)
	}
}

func TestApplyUnchangedSendsNoWrite(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	c := fake.client(t, Config{})
	if _, err := c.Apply(t.Context(), []RouteSpec{webSpec}); err != nil {
		t.Fatalf("first Apply: %v", err)
	}

	result, err := c.Apply(t.Context(), []RouteSpec{webSpec})
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}

	if result.Written {
		t.Error("Written = true, want false")
	}
	if fake.writeCount() != 1 {
		t.Errorf("writes = %d, want 1", fake.writeCount())
	}
	if len(result.Added)+len(result.Updated)+len(result.Removed) != 0 {
		t.Errorf("result lists changes for an unchanged set: %+v", result)
	}
}

func TestApplyCreatesMissingRoutesKey(t *testing.T) {
	fake := newFakeCaddy(t, "")
	c := fake.client(t, Config{})

	if _, err := c.Apply(t.Context(), []RouteSpec{webSpec}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	requests := fake.requestLog()
	if got, want := requests[len(requests)-1], "PUT "+fakeServerPath+"/routes"; got != want {
		t.Errorf("last request = %q, want %q", got, want)
	}
	if got := strings.Join(fake.routeIDs(), ","); got != webSpec.ID {
		t.Errorf("route ids = %q, want %q", got, webSpec.ID)
	}
}

func TestApplySendsHeaders(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	c := fake.client(t, Config{})

	if _, err := c.Apply(t.Context(), []RouteSpec{webSpec}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.headers) != 2 {
		t.Fatalf("requests = %d, want a GET and a PATCH", len(fake.headers))
	}
	read, write := fake.headers[0], fake.headers[1]
	origin := "http://" + strings.TrimPrefix(fake.URL, "http://")
	if got := read.Get("Origin"); got != origin {
		t.Errorf("GET Origin = %q, want %q", got, origin)
	}
	if got := write.Get("Content-Type"); got != "application/json" {
		t.Errorf("PATCH Content-Type = %q, want application/json", got)
	}
	if got := write.Get("If-Match"); !strings.HasPrefix(got, `"`+fakeServerPath+" ") {
		t.Errorf("PATCH If-Match = %q, want the Etag of the GET", got)
	}
}

func TestApplyRetries(t *testing.T) {
	conflict := func(t *testing.T, w http.ResponseWriter) {
		writeCaddyError(w, http.StatusPreconditionFailed, "If-Match header did not match current config hash")
	}
	tests := []struct {
		name     string
		failures int32
		fail     func(t *testing.T, w http.ResponseWriter)
	}{
		{"conflict", 2, conflict},
		{"reset", 1, resetConnection},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// the first PATCH requests fail, then one succeeds
			fake := newFakeCaddy(t, catchAllJSON)
			var patches atomic.Int32
			fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPatch && patches.Add(1) <= tt.failures {
					tt.fail(t, w)
					return true
				}
				return false
			}
			c := fake.client(t, Config{})

			result, err := c.Apply(t.Context(), []RouteSpec{webSpec})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}

			if want := int(tt.failures) + 1; result.Attempts != want {
				t.Errorf("Attempts = %d, want %d", result.Attempts, want)
			}
			if !result.Written {
				t.Error("Written = false, want true")
			}
			if fake.writeCount() != 1 {
				t.Errorf("writes = %d, want 1", fake.writeCount())
			}
		})
	}
}

func TestApplyConflictAfterMaxAttempts(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch {
			writeCaddyError(w, http.StatusPreconditionFailed, "If-Match header did not match current config hash")
			return true
		}
		return false
	}
	c := fake.client(t, Config{MaxAttempts: 3})

	result, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrConflict)
	if apiErr.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("StatusCode = %d, want 412", apiErr.StatusCode)
	}
	if !strings.Contains(apiErr.Error(), "all 3 attempts") {
		t.Errorf("error %q does not give the attempt count", apiErr)
	}
	if result.Attempts != 3 {
		t.Errorf("Attempts = %d, want 3", result.Attempts)
	}
	if result.Written {
		t.Error("Written = true, want false")
	}
}

func TestApplyTimeout(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	release := make(chan struct{})
	defer close(release)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
	c := fake.client(t, Config{Timeout: 50 * time.Millisecond})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrUnreachable)
	if apiErr.StatusCode != 0 {
		t.Errorf("StatusCode = %d, want 0", apiErr.StatusCode)
	}
	if !strings.Contains(apiErr.Error(), "timed out") {
		t.Errorf("error %q does not say that the request timed out", apiErr)
	}
	if n := len(fake.requestLog()); n != 1 {
		t.Errorf("requests = %d, want 1 because a timeout is not retried", n)
	}
}

func TestApplyResetAfterWriteSent(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch {
			return false
		}
		resetConnection(t, w)
		return true
	}
	c := fake.client(t, Config{MaxAttempts: 3})

	result, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrUnreachable)
	if apiErr.Method != http.MethodPatch {
		t.Errorf("Method = %q, want PATCH", apiErr.Method)
	}
	if !strings.Contains(apiErr.Error(), "may or may not have been applied") {
		t.Errorf("error %q does not say the write may have been applied", apiErr)
	}
	if !strings.Contains(apiErr.Error(), "all 3 attempts") {
		t.Errorf("error %q does not give the attempt count", apiErr)
	}
	if result.Attempts != 3 {
		t.Errorf("Attempts = %d, want 3", result.Attempts)
	}
	if result.Written {
		t.Error("Written = true, want false")
	}
}

// resetConnection hijacks the connection of w and closes it with a TCP
// reset, as a server that dies after reading the request does.
func resetConnection(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijacking the connection: %v", err)
		return
	}

	// linger 0 makes Close send a TCP reset
	_ = conn.(*net.TCPConn).SetLinger(0)
	_ = conn.Close()
}

func TestApplyLostResponseCountsWrite(t *testing.T) {
	// the first PATCH is stored, but its response is lost
	fake := newFakeCaddy(t, catchAllJSON)
	var patches atomic.Int32
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch || patches.Add(1) != 1 {
			return false
		}
		fake.serveDefault(httptest.NewRecorder(), r)
		resetConnection(t, w)
		return true
	}
	c := fake.client(t, Config{})

	result, err := c.Apply(t.Context(), []RouteSpec{webSpec})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if !result.Written {
		t.Error("Written = false, want true")
	}
	if got := strings.Join(result.Added, ","); got != webSpec.ID {
		t.Errorf("Added = %q, want %q", got, webSpec.ID)
	}
	if result.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2", result.Attempts)
	}
	if n := patches.Load(); n != 1 {
		t.Errorf("PATCH requests = %d, want 1", n)
	}
}

func TestCheckRetriesReset(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	var resets atomic.Int32
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if resets.Add(1) == 1 {
			resetConnection(t, w)
			return true
		}
		return false
	}
	c := fake.client(t, Config{})

	if err := c.Check(t.Context()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if n := len(fake.requestLog()); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
}

func TestApplyServerErrorOnRead(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		writeCaddyError(w, http.StatusInternalServerError, "something broke")
		return true
	}
	c := fake.client(t, Config{})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrUnexpectedResponse)
	if apiErr.StatusCode != http.StatusInternalServerError {
		t.Errorf("StatusCode = %d, want 500", apiErr.StatusCode)
	}
	if apiErr.Message != "something broke" {
		t.Errorf("Message = %q, want Caddy's message", apiErr.Message)
	}
}

func TestApplyLoadFailureIsRejected(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPatch {
			return false
		}
		writeCaddyError(w, http.StatusInternalServerError, "loading new config: provision http: bad upstream")
		return true
	}
	c := fake.client(t, Config{})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrRejected)
	if apiErr.StatusCode != http.StatusInternalServerError {
		t.Errorf("StatusCode = %d, want 500", apiErr.StatusCode)
	}
	if !strings.HasPrefix(apiErr.Message, "loading new config") {
		t.Errorf("Message = %q, want Caddy's message", apiErr.Message)
	}
}

func TestApplyOversizedBody(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Etag", `"`+fakeServerPath+` 00"`)
		_, _ = w.Write([]byte(`{"routes":[` + strings.Repeat(" ", 2048) + `]}`))
		return true
	}
	c := fake.client(t, Config{MaxResponseBytes: 1024})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrUnexpectedResponse)
	if !strings.Contains(apiErr.Error(), "exceeds 1024 bytes") {
		t.Errorf("error %q does not name the limit", apiErr)
	}
}

func TestApplyForbiddenNamesURL(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		writeCaddyError(w, http.StatusForbidden, "host not allowed: "+r.Host)
		return true
	}
	c := fake.client(t, Config{})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrForbidden)
	if !strings.Contains(apiErr.Hint, fake.URL) {
		t.Errorf("hint %q does not name the admin URL %s", apiErr.Hint, fake.URL)
	}
	if !strings.HasPrefix(apiErr.Message, "host not allowed") {
		t.Errorf("Message = %q, want Caddy's message", apiErr.Message)
	}
}

func TestApplyServerMissing(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.server = nil
	c := fake.client(t, Config{})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrMissing)
	if !strings.Contains(apiErr.Hint, "srv0") {
		t.Errorf("hint %q does not name the server", apiErr.Hint)
	}
}

func TestApplyUntraversablePathIsMissing(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		writeCaddyError(w, http.StatusBadRequest, "invalid traversal path at: config/apps/http/servers/srv0")
		return true
	}
	c := fake.client(t, Config{})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	requireKind(t, err, ErrMissing)
}

func TestApplyWithoutEtag(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		_, _ = w.Write([]byte(`{"routes":[]}`))
		return true
	}
	c := fake.client(t, Config{})

	_, err := c.Apply(t.Context(), []RouteSpec{webSpec})

	requireKind(t, err, ErrUnexpectedResponse)
}

func TestApplyUnreachable(t *testing.T) {
	// a listener that is closed at once leaves a port that refuses
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c, err := New(Config{AdminURL: "http://" + addr, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	_, err = c.Apply(t.Context(), []RouteSpec{webSpec})

	apiErr := requireKind(t, err, ErrUnreachable)
	if apiErr.Err == nil {
		t.Error("Err = nil, want the network error")
	}
}

func TestApplyInvalidSpecSendsNothing(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	c := fake.client(t, Config{})
	bad := RouteSpec{ID: "k8s-router.default.web", Hosts: []string{"web.example.com"}, Dials: []string{"::1:8080"}}

	_, err := c.Apply(t.Context(), []RouteSpec{bad})

	var specErr *SpecError
	if !errors.As(err, &specErr) {
		t.Fatalf("error = %v, want a *SpecError", err)
	}
	if specErr.Value != "::1:8080" {
		t.Errorf("Value = %q, want the dial", specErr.Value)
	}
	if n := len(fake.requestLog()); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

func TestApplyOneWriterPerInstance(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)

	// Each request waits up to 100ms for a second one to arrive, which
	// only happens when two Applies run their requests at the same time.
	var inFlight, maxInFlight atomic.Int32
	overlap := make(chan struct{})
	var overlapOnce sync.Once
	fake.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		defer inFlight.Add(-1)
		if n := inFlight.Add(1); n > 1 {
			maxInFlight.Store(n)
			overlapOnce.Do(func() { close(overlap) })
		} else {
			select {
			case <-overlap:
			case <-time.After(100 * time.Millisecond):
			}
		}
		fake.serveDefault(w, r)
		return true
	}

	// two clients of the same URL, each applying a different set
	first := fake.client(t, Config{})
	second := fake.client(t, Config{})
	var wg sync.WaitGroup
	for i, c := range []*Client{first, second} {
		wg.Go(func() {
			spec := webSpec
			if i == 1 {
				spec.Dials = []string{"10.0.0.8:8080"}
			}
			if _, err := c.Apply(t.Context(), []RouteSpec{spec}); err != nil {
				t.Errorf("Apply %d: %v", i, err)
			}
		})
	}
	wg.Wait()

	if got := maxInFlight.Load(); got > 1 {
		t.Errorf("max requests in flight = %d, want 1", got)
	}
	if got := fake.writeCount(); got != 2 {
		t.Errorf("writes = %d, want 2", got)
	}
}

func TestApplyLockWaitEndsWithContext(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	c := fake.client(t, Config{})
	if err := c.lock.acquire(t.Context()); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer c.lock.release()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Apply(ctx, []RouteSpec{webSpec})

	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestCheck(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	c := fake.client(t, Config{})

	if err := c.Check(t.Context()); err != nil {
		t.Errorf("Check: %v", err)
	}

	fake.mu.Lock()
	fake.server = nil
	fake.mu.Unlock()
	requireKind(t, c.Check(t.Context()), ErrMissing)
}

func TestOwned(t *testing.T) {
	fake := newFakeCaddy(t, catchAllJSON)
	c := fake.client(t, Config{})
	other := RouteSpec{ID: "k8s-router.default.api", Hosts: []string{"API.example.com"}, Dials: []string{"10.0.0.9:80", "[fd00::1]:80"}}
	if _, err := c.Apply(t.Context(), []RouteSpec{webSpec, other}); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	specs, err := c.Owned(t.Context())
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}

	if len(specs) != 2 {
		t.Fatalf("Owned returned %d specs, want 2: %+v", len(specs), specs)
	}
	if specs[0].ID != other.ID || specs[1].ID != webSpec.ID {
		t.Errorf("ids = %q, %q; want sorted %q, %q", specs[0].ID, specs[1].ID, other.ID, webSpec.ID)
	}
	if got := strings.Join(specs[0].Hosts, ","); got != "api.example.com" {
		t.Errorf("hosts = %q, want lower-cased api.example.com", got)
	}
	if got := strings.Join(specs[0].Dials, ","); got != "10.0.0.9:80,[fd00::1]:80" {
		t.Errorf("dials = %q", got)
	}
}

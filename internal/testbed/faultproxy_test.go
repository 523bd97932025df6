package testbed

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startAdminProxy starts a Caddy and a proxy in front of its admin API.
func startAdminProxy(t *testing.T) (*Caddy, *AdminProxy) {
	t.Helper()

	c := startCaddy(t, CaddyOptions{})
	p, err := StartAdminProxy(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	return c, p
}

// proxyRequest sends a request to the proxy with the Host and Origin
// headers a client of the proxy's URL sends, and returns the status, the
// Etag and the body.
func proxyRequest(ctx context.Context, p *AdminProxy, method, path, etag, body string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Origin", p.URL)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}

	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(resp.Body)

	return resp.StatusCode, resp.Header.Get("Etag"), string(data), err
}

const routesPath = "/config/apps/http/servers/srv0/routes"

func TestAdminProxyForwards(t *testing.T) {
	c, p := startAdminProxy(t)
	ctx := t.Context()

	var writes atomic.Int64
	p.OnWrite(func(method, path string) {
		if method == http.MethodPut && path == routesPath+"/0" {
			writes.Add(1)
		}
	})

	// a read with the Etag, then a conditional write through the proxy
	status, etag, body, err := proxyRequest(ctx, p, http.MethodGet, routesPath, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || !strings.Contains(body, CatchAllID) {
		t.Fatalf("GET routes through the proxy = %d %q, want 200 with the catch-all", status, body)
	}
	if etag == "" {
		t.Error("GET routes through the proxy returned no Etag")
	}

	route := `{"@id":"through-proxy","handle":[{"handler":"static_response","body":"x"}]}`
	status, _, body, err = proxyRequest(ctx, p, http.MethodPut, routesPath+"/0", etag, route)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Fatalf("PUT through the proxy = %d %q, want 200", status, body)
	}
	if writes.Load() != 1 {
		t.Errorf("OnWrite saw %d matching writes, want 1", writes.Load())
	}
	if p.Writes() != 1 {
		t.Errorf("Writes() = %d, want 1", p.Writes())
	}

	// the write reached Caddy
	status, _, _, err = c.Admin(ctx, http.MethodGet, "/id/through-proxy", nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Errorf("GET /id/through-proxy from Caddy = %d, want 200", status)
	}
	if p.Faulted() != 0 {
		t.Errorf("Faulted() = %d with no fault set, want 0", p.Faulted())
	}
}

func TestAdminProxyError(t *testing.T) {
	_, p := startAdminProxy(t)
	ctx := t.Context()

	p.SetFault(FaultError)
	status, _, body, err := proxyRequest(ctx, p, http.MethodGet, routesPath, "", "")
	if err != nil {
		t.Fatal(err)
	}

	if status != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", status)
	}
	if body != FaultErrorBody {
		t.Errorf("body = %q, want %q", body, FaultErrorBody)
	}
	if p.Faulted() != 1 {
		t.Errorf("Faulted() = %d, want 1", p.Faulted())
	}

	p.SetFault(FaultNone)
	status, _, _, err = proxyRequest(ctx, p, http.MethodGet, routesPath, "", "")
	if err != nil || status != http.StatusOK {
		t.Errorf("GET after the fault cleared = %d, %v, want 200", status, err)
	}
}

func TestAdminProxyHang(t *testing.T) {
	_, p := startAdminProxy(t)

	p.SetFault(FaultHang)

	// a client with a deadline times out
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, _, _, err := proxyRequest(ctx, p, http.MethodGet, routesPath, "", "")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want a deadline exceeded", err)
	}

	// a held request gets its response once the hang ends
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, _, _, err := proxyRequest(t.Context(), p, http.MethodGet, routesPath, "", "")
		done <- result{status, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("request answered during the hang: %d %v", r.status, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	p.SetFault(FaultNone)
	r := <-done
	if r.err != nil || r.status != http.StatusOK {
		t.Errorf("held request after the hang = %d, %v, want 200", r.status, r.err)
	}
}

func TestAdminProxyUnixSocket(t *testing.T) {
	c := &Caddy{AdminURL: "unix//tmp/admin.sock"}

	_, err := StartAdminProxy(c)

	if err == nil || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf("error = %v, want one saying the socket is not supported", err)
	}
}

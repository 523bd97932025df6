package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ownedIDMarker starts the @id of every route the router writes, as
// encoding/json and Caddy both write it: without spaces.
var ownedIDMarker = []byte(`"@id":"k8s-router.`)

// adminRequest is one request that the proxy forwarded.
type adminRequest struct {
	method string
	status int
	// start is when the request reached the proxy, done when Caddy's
	// response arrived, after the reload for a write.
	start, done time.Time
	// owned is the number of router-owned routes in the request body.
	owned int
}

// adminProxy sits between the router and Caddy's admin API and records
// every request, counting the writes that Caddy accepts. Caddy rejects a
// Host header other than its admin listener, so the proxy rewrites Host and
// Origin. When Caddy closes a connection without a response, as it does to
// connections that span a config change, the proxy drops the router's
// connection too, so that the router gets the same failure.
type adminProxy struct {
	// URL is what the router takes as --caddy-admin.
	URL string

	caddyAddr string
	transport *http.Transport
	server    *http.Server

	mu       sync.Mutex
	requests []adminRequest
	writes   []adminRequest
	reads    int
	inFlight int
	lastDone time.Time
}

// startAdminProxy starts a proxy for the Caddy admin listener caddyAddr
// (host:port) on a free loopback port.
func startAdminProxy(caddyAddr string) (*adminProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}

	p := &adminProxy{
		URL:       "http://" + l.Addr().String(),
		caddyAddr: caddyAddr,
		// Caddy closes admin connections on every config change.
		transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		lastDone:  time.Now(),
	}
	p.server = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.server.Serve(l) }()

	return p, nil
}

// ServeHTTP forwards one request to Caddy and records it.
func (p *adminProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The router's first-route probe, one small GET a second, is no work
	// to wait for; counting it would keep the proxy from ever being idle.
	if !isFirstRouteProbe(r) {
		p.begin()
		defer p.end()
	}

	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}

	// forward it with the Host and Origin that Caddy accepts
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.caddyAddr+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	out.Header = r.Header.Clone()
	if out.Header.Get("Origin") != "" {
		out.Header.Set("Origin", "http://"+p.caddyAddr)
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer resp.Body.Close()

	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	p.record(r.Method, resp.StatusCode, start, body)

	for key, values := range resp.Header {
		w.Header()[key] = values
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// isFirstRouteProbe reports whether r is the router's read of the first
// route id, which caddyapi.Client.FirstRouteID sends.
func isFirstRouteProbe(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/routes/0/@id")
}

func (p *adminProxy) begin() {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.inFlight++
}

func (p *adminProxy) end() {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.inFlight--
	p.lastDone = time.Now()
}

// record stores a request, and counts it as a read or, when Caddy
// accepted it, as a write.
func (p *adminProxy) record(method string, status int, start time.Time, body []byte) {
	req := adminRequest{method: method, status: status, start: start, done: time.Now(), owned: bytes.Count(body, ownedIDMarker)}

	p.mu.Lock()
	defer p.mu.Unlock()

	p.requests = append(p.requests, req)
	if method == http.MethodGet {
		p.reads++
		return
	}
	if status >= 200 && status <= 299 {
		p.writes = append(p.writes, req)
	}
}

// RequestsSince returns the requests that reached the proxy at or after t.
func (p *adminProxy) RequestsSince(t time.Time) []adminRequest {
	p.mu.Lock()
	defer p.mu.Unlock()

	var out []adminRequest
	for _, r := range p.requests {
		if !r.start.Before(t) {
			out = append(out, r)
		}
	}

	return out
}

// Writes returns the accepted writes so far.
func (p *adminProxy) Writes() []adminRequest {
	p.mu.Lock()
	defer p.mu.Unlock()

	return append([]adminRequest(nil), p.writes...)
}

// WriteCount returns the number of accepted writes so far.
func (p *adminProxy) WriteCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()

	return len(p.writes)
}

// ReadCount returns the number of GET requests so far.
func (p *adminProxy) ReadCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()

	return p.reads
}

// WroteSince reports whether Caddy has accepted a write that reached the
// proxy at or after t.
func (p *adminProxy) WroteSince(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()

	return len(p.writes) > 0 && !p.writes[len(p.writes)-1].start.Before(t)
}

// WaitIdle waits until no request has been in flight for quiet, or ctx ends.
func (p *adminProxy) WaitIdle(ctx context.Context, quiet time.Duration) error {
	for {
		p.mu.Lock()
		idleFor := time.Since(p.lastDone)
		busy := p.inFlight > 0
		p.mu.Unlock()

		if !busy && idleFor >= quiet {
			return nil
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitOwned waits until Caddy has accepted a write with at least n owned
// routes, and returns that write.
func (p *adminProxy) WaitOwned(ctx context.Context, n int) (adminRequest, error) {
	for {
		p.mu.Lock()
		for _, w := range p.writes {
			if w.owned >= n {
				p.mu.Unlock()
				return w, nil
			}
		}
		p.mu.Unlock()

		select {
		case <-ctx.Done():
			return adminRequest{}, errors.Join(errors.New("no admin write with all routes"), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops the proxy.
func (p *adminProxy) Close() error {
	return p.server.Close()
}

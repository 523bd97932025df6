package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is the kind of failure that an AdminProxy injects into the requests
// it receives.
type Fault int

const (
	// FaultNone forwards every request to Caddy.
	FaultNone Fault = iota
	// FaultError responds to every request with 500 and a JSON error body,
	// as Caddy does when it fails to load a config.
	FaultError
	// FaultHang holds every request without a response until the fault is
	// set to another value, which then handles it, or until the client
	// gives up. Clients see it as a time-out.
	FaultHang
)

// String returns the fault's name, for test logs.
func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultError:
		return "error 500"
	case FaultHang:
		return "hang"
	default:
		return fmt.Sprintf("Fault(%d)", int(f))
	}
}

// FaultErrorBody is the body of the responses FaultError injects.
const FaultErrorBody = `{"error":"fault injected by the test bed"}` + "\n"

// forwardAttempts bounds how often the proxy sends one request to Caddy
// when the connection fails without a response. Caddy v2.11.9 replaces its
// admin listener on every config change, so a new connection can be reset.
// A direct client repeats such a request, and the proxy does the same, so
// that it adds no failures of its own.
const forwardAttempts = 5

// AdminProxy is an HTTP proxy in front of the TCP admin API of a Caddy that
// injects faults on demand. Point the router's --caddy-admin at URL. It
// rewrites the Host and Origin headers to Caddy's admin address, which
// Caddy checks. Its methods are safe for concurrent use.
type AdminProxy struct {
	// URL is the proxy's admin endpoint, "http://127.0.0.1:PORT".
	URL string

	target   string
	client   *http.Client
	server   *http.Server
	listener net.Listener
	done     chan struct{}

	mu sync.Mutex
	// fault is the current fault.
	fault Fault
	// changed is closed and replaced on every change of fault.
	changed chan struct{}
	// onWrite, when set, runs before a write is forwarded.
	onWrite func(method, path string)

	faulted atomic.Int64
	writes  atomic.Int64
}

// StartAdminProxy starts a proxy in front of caddy's admin API on a free
// loopback port. It returns an error for a Caddy whose admin API listens on
// a unix socket. Stop it with Close.
func StartAdminProxy(caddy *Caddy) (*AdminProxy, error) {
	if strings.HasPrefix(caddy.AdminURL, "unix/") {
		return nil, fmt.Errorf("admin proxy: Caddy's admin API at %s is a unix socket; the proxy needs a TCP address", caddy.AdminURL)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("admin proxy: %w", err)
	}

	p := &AdminProxy{
		URL:      "http://" + l.Addr().String(),
		target:   caddy.AdminAddr,
		listener: l,
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		// a new connection per request, as the router's client does
		client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: time.Minute},
	}
	p.server = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		_ = p.server.Serve(l)
	}()

	return p, nil
}

// SetFault changes the fault from now on. Requests held by FaultHang are
// then handled by the new fault.
func (p *AdminProxy) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.fault = f
	close(p.changed)
	p.changed = make(chan struct{})
}

// OnWrite sets a function that runs before each write request (any method
// but GET and HEAD) is forwarded, with the request's method and path. The
// proxy forwards the write after the function returns. Nil removes it.
func (p *AdminProxy) OnWrite(f func(method, path string)) {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.onWrite = f
}

// Faulted returns how many requests got an injected fault: a 500, or a hang
// that the client gave up on.
func (p *AdminProxy) Faulted() int64 {
	return p.faulted.Load()
}

// Writes returns how many write requests the proxy forwarded to Caddy.
func (p *AdminProxy) Writes() int64 {
	return p.writes.Load()
}

// Close stops the proxy at once, closing open connections.
func (p *AdminProxy) Close() error {
	err := p.server.Close()
	<-p.done

	return err
}

// current returns the fault, the channel closed at its next change, and
// the OnWrite function.
func (p *AdminProxy) current() (Fault, <-chan struct{}, func(string, string)) {
	p.mu.Lock()
	defer p.mu.Unlock()

	return p.fault, p.changed, p.onWrite
}

// serve handles one request according to the current fault.
func (p *AdminProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "admin proxy: reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}

	// wait while the fault is a hang
	fault, changed, onWrite := p.current()
	for fault == FaultHang {
		select {
		case <-r.Context().Done():
			p.faulted.Add(1)
			return
		case <-changed:
			fault, changed, onWrite = p.current()
		}
	}

	if fault == FaultError {
		p.faulted.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, FaultErrorBody)
		return
	}

	isWrite := r.Method != http.MethodGet && r.Method != http.MethodHead
	if isWrite && onWrite != nil {
		onWrite(r.Method, r.URL.Path)
	}

	p.forward(w, r, body, isWrite)
}

// forward sends the request to Caddy and copies the response back.
func (p *AdminProxy) forward(w http.ResponseWriter, r *http.Request, body []byte, isWrite bool) {
	var (
		resp *http.Response
		err  error
	)
	for attempt := 1; attempt <= forwardAttempts; attempt++ {
		resp, err = p.send(r, body)
		if err == nil || r.Context().Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
	}
	if err != nil {
		http.Error(w, "admin proxy: forwarding to Caddy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	if isWrite {
		p.writes.Add(1)
	}
	for key, values := range resp.Header {
		w.Header()[key] = values
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// send makes one attempt to forward the request to Caddy. The attempt
// goes on when the client hangs up, so that a write in flight still lands,
// as it does when a client dies after sending it.
func (p *AdminProxy) send(r *http.Request, body []byte) (*http.Response, error) {
	ctx := context.WithoutCancel(r.Context())
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://"+p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for key, values := range r.Header {
		out.Header[key] = values
	}
	out.Host = p.target
	if out.Header.Get("Origin") != "" {
		out.Header.Set("Origin", "http://"+p.target)
	}

	resp, err := p.client.Do(out)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}

	return resp, nil
}

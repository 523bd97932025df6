package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"
)

// PodNameHeader is the response header in which a backend names its pod.
const PodNameHeader = "X-Pod-Name"

// Backend is a small HTTP server in place of a pod's container. It
// responds to every request with its name and a newline, and echoes every
// message on a websocket opened with an Upgrade request.
type Backend struct {
	// Name is the response body of the backend, without the newline: the
	// pod's name.
	Name string
	// Addr is the listen address, ip:port.
	Addr string

	server   *http.Server
	requests atomic.Int64
	done     chan struct{}
}

// StartBackend starts a backend named name on ip:port.
func StartBackend(ip string, port int, name string) (*Backend, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("starting backend %s: %w", name, err)
	}

	return serveBackend(l, name), nil
}

func serveBackend(l net.Listener, name string) *Backend {
	b := &Backend{Name: name, Addr: l.Addr().String(), done: make(chan struct{})}

	echo := websocket.Server{
		// Accept any Origin: the test clients are the only callers.
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler:   func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) },
	}
	b.server = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.requests.Add(1)
			if r.Header.Get("Upgrade") == "websocket" {
				echo.ServeHTTP(w, r)
				return
			}

			w.Header().Set(PodNameHeader, name)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, name+"\n")
		}),
	}
	go func() {
		defer close(b.done)
		_ = b.server.Serve(l)
	}()

	return b
}

// Requests returns how many requests the backend has received.
func (b *Backend) Requests() int64 {
	return b.requests.Load()
}

// Close stops the backend at once, closing open connections.
func (b *Backend) Close() error {
	err := b.server.Close()
	<-b.done

	return err
}

// Shutdown stops accepting connections and waits for in-flight requests,
// as a pod's process does on SIGTERM.
func (b *Backend) Shutdown(ctx context.Context) error {
	err := b.server.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = b.server.Close()
	}
	<-b.done

	return err
}

// addressPool hands out distinct 127.x.y.z addresses. Linux routes all of
// 127.0.0.0/8 to the loopback interface, so each pod can have its own IP
// without any setup. The start is random so that test binaries running in
// parallel rarely try the same addresses; a bind that fails moves on.
type addressPool struct {
	mu   sync.Mutex
	next uint32
}

func newAddressPool() *addressPool {
	// 127.16.0.1 up to 127.254.255.254, away from 127.0.0.x.
	const first, span = 16 << 16, 238 << 16
	return &addressPool{next: first + rand.Uint32N(span)}
}

// listen binds a listener on port of the next free address.
func (p *addressPool) listen(port int) (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()

	var lastErr error
	for range 512 {
		p.next++
		if p.next >= 255<<16 {
			p.next = 16<<16 + 1
		}
		octets := [4]byte{127, byte(p.next >> 16), byte(p.next >> 8), byte(p.next)}
		if octets[3] == 0 || octets[3] == 255 {
			continue
		}

		ip := net.IP(octets[:]).String()
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err == nil {
			return l, nil
		}
		lastErr = err
	}

	return nil, fmt.Errorf("no free loopback address for port %d: %w", port, lastErr)
}

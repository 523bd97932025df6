package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// runningServer is a webhook server started by startTestServer.
type runningServer struct {
	addr    string
	certDir string
	ca      *testCA
	serial  *big.Int
}

// startTestServer starts NewServer on a free 127.0.0.1 port with
// certificates from a fresh CA, waits until it accepts TLS connections, and
// stops it in the test's cleanup.
func startTestServer(tb testing.TB, handler *Handler) *runningServer {
	tb.Helper()

	running := &runningServer{certDir: tb.TempDir(), ca: newTestCA(tb)}
	running.serial = running.ca.writeServingCert(tb, running.certDir)
	port := freePort(tb)
	running.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	server := NewServer(Options{Host: "127.0.0.1", Port: port, CertDir: running.certDir}, handler)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Start(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("webhook server: %v", err)
		}
	})

	// wait until the server accepts connections, or fail if Start returned
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		select {
		case err := <-done:
			done <- err
			return false, errors.Join(errors.New("webhook server stopped"), err)
		default:
		}
		return server.StartedChecker()(nil) == nil, nil
	})
	if err != nil {
		tb.Fatalf("waiting for the webhook server at %s: %v", running.addr, err)
	}

	return running
}

// client returns an HTTPS client that trusts only the server's CA and uses
// the given TLS version range.
func (s *runningServer) client(minVersion, maxVersion uint16) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(s.ca.cert)

	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: minVersion, MaxVersion: maxVersion},
	}}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer listener.Close()

	return listener.Addr().(*net.TCPAddr).Port
}

func TestServerPatchOverTLS(t *testing.T) {
	running := startTestServer(t, newTestHandler(t, routing.DefaultHostTemplate))
	object := deployment(`"name": "ws1"`)
	body := deploymentReview("CREATE", "ws1", object).body()

	resp, err := running.client(tls.VersionTLS12, 0).Post("https://"+running.addr+Path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status = %d, body %s", resp.StatusCode, raw)
	}
	review := decodeReview(t, raw)
	want := deployment(`"name": "ws1", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`)
	assertJSONEqual(t, applyPatch(t, review.Response, object), want)
}

func TestServerRejectsTLS11(t *testing.T) {
	running := startTestServer(t, newTestHandler(t, routing.DefaultHostTemplate))
	roots := x509.NewCertPool()
	roots.AddCert(running.ca.cert)

	conn, err := tls.Dial("tcp", running.addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded, want it rejected")
	}

	conn, err = tls.Dial("tcp", running.addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 handshake failed: %v", err)
	}
	conn.Close()
}

func TestServerReloadsCertificate(t *testing.T) {
	running := startTestServer(t, newTestHandler(t, routing.DefaultHostTemplate))

	if got := servedSerial(t, running); got.Cmp(running.serial) != 0 {
		t.Fatalf("served serial = %x, want %x", got, running.serial)
	}

	renewed := running.ca.writeServingCert(t, running.certDir)

	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return servedSerial(t, running).Cmp(renewed) == 0, nil
	})
	if err != nil {
		t.Errorf("server still serves serial %x, want the renewed %x: %v", servedSerial(t, running), renewed, err)
	}
}

// servedSerial returns the serial number of the certificate the server
// presents in a new handshake.
func servedSerial(t *testing.T, running *runningServer) *big.Int {
	t.Helper()

	roots := x509.NewCertPool()
	roots.AddCert(running.ca.cert)
	conn, err := tls.Dial("tcp", running.addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestRequireTLS12(t *testing.T) {
	config := &tls.Config{MinVersion: tls.VersionTLS10}

	requireTLS12(config)

	if config.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2 (%#x)", config.MinVersion, tls.VersionTLS12)
	}
}

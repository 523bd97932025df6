package e2eutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// RouterPackage is the import path of the router's main package.
const RouterPackage = "github.com/caddy-k8s-router/caddy-k8s-router/cmd/router"

// healthTimeout bounds one request to the health server. The router's
// /readyz gives each check up to 2 seconds, so this leaves room for it.
const healthTimeout = 5 * time.Second

// BuildRouter builds the router binary into dir and returns its path, with
// -race when RaceEnabled. It blocks until `go build` ends and returns the
// build's output in the error when it fails.
func BuildRouter(dir string) (string, error) {
	binary := filepath.Join(dir, "router")
	args := []string{"build", "-o", binary}
	if RaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, RouterPackage)

	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the router: %w\n%s", err, out)
	}

	return binary, nil
}

// Router is a router process on the test bed. Its health address stays the
// same when it is started again, so probes keep working across restarts.
// Its methods are safe for concurrent use.
type Router struct {
	// HealthURL is "http://127.0.0.1:PORT", where the router serves
	// /healthz, /readyz and /metrics.
	HealthURL string

	binary string
	args   []string
	health *http.Client

	mu   sync.Mutex
	proc *testbed.Process
	// pastLogs holds the output of the processes that exited, oldest first.
	pastLogs []string
}

// StartRouter starts binary with args and a --health-addr flag on a free
// loopback port, without waiting for it to become ready (see WaitReady).
// Stop it with Stop or Kill.
func StartRouter(binary string, args []string) (*Router, error) {
	addr, err := testbed.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}

	r := &Router{
		HealthURL: "http://" + addr,
		binary:    binary,
		args:      append(append([]string(nil), args...), "--health-addr="+addr),
		health:    &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: healthTimeout},
	}
	if err := r.Start(); err != nil {
		return nil, err
	}

	return r, nil
}

// Start starts the router again with the same flags after it exited, was
// stopped or was killed. It returns an error if the router is running.
func (r *Router) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()

	if r.proc != nil {
		select {
		case <-r.proc.Exited():
		default:
			return errors.New("the router is still running")
		}
		r.pastLogs = append(r.pastLogs, r.proc.Log())
	}

	proc, err := testbed.StartProcess(r.binary, r.args, nil)
	if err != nil {
		return err
	}
	r.proc = proc

	return nil
}

// Process returns the current router process.
func (r *Router) Process() *testbed.Process {
	r.mu.Lock()
	defer r.mu.Unlock()

	return r.proc
}

// Kill ends the router with SIGKILL, as a crash or an OOM kill would, and
// waits for it to exit.
func (r *Router) Kill() {
	r.Process().Kill()
}

// Stop sends SIGTERM and waits up to timeout for the router to exit. It
// returns an error if the router had to be killed or exited with a code
// other than 0. A router that has already exited is not an error.
func (r *Router) Stop(timeout time.Duration) error {
	proc := r.Process()
	select {
	case <-proc.Exited():
		return nil
	default:
	}

	if err := proc.Stop(timeout); err != nil {
		return err
	}
	if code := proc.ExitCode(); code != 0 {
		return fmt.Errorf("the router exited with code %d after SIGTERM, want 0", code)
	}

	return nil
}

// Log returns the output of every process of this router so far, oldest
// first, with a line between two processes.
func (r *Router) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()

	logs := append(append([]string(nil), r.pastLogs...), r.proc.Log())

	return strings.Join(logs, "\n----- router started again -----\n")
}

// Health sends a GET for path to the health server and returns the status
// and the body.
func (r *Router) Health(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.HealthURL+path, nil)
	if err != nil {
		return 0, "", err
	}

	resp, err := r.health.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))

	return resp.StatusCode, string(body), err
}

// WaitReady polls /readyz until it returns 200 or timeout passes. The error
// contains the last response, or the exit code when the router exited.
func (r *Router) WaitReady(ctx context.Context, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-r.Process().Exited():
			return false, fmt.Errorf("the router exited with code %d", r.Process().ExitCode())
		default:
		}

		status, body, err := r.Health(ctx, "/readyz")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d %q", status, body)

		return status == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for /readyz at %s (last response: %s): %w", r.HealthURL, last, err)
	}

	return nil
}

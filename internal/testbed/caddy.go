package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Placeholders replaced in CaddyOptions.Config with the addresses chosen
// for the run.
const (
	AdminListenPlaceholder = "ADMIN_LISTEN"
	HTTPListenPlaceholder  = "HTTP_LISTEN"
)

// CatchAllID is the @id of the last route of the default config, which
// responds with 404 for every host that no other route matches.
const CatchAllID = "catch-all"

// CatchAllBody is the response body of the catch-all route.
const CatchAllBody = "no route for this host\n"

// defaultCaddyConfig has the admin API and one server, srv0, with automatic
// HTTPS off and a routes array that ends with a catch-all 404 route.
const defaultCaddyConfig = `{
  "admin": {"listen": "ADMIN_LISTEN", "config": {"persist": false}},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {"http": {"servers": {"srv0": {
    "listen": ["HTTP_LISTEN"],
    "automatic_https": {"disable": true},
    "routes": [
      {"@id": "catch-all", "handle": [{"handler": "static_response", "status_code": 404, "body": "no route for this host\n"}]}
    ]
  }}}}
}`

// CaddyOptions configures StartCaddy. The zero value runs the default config
// with the admin API on a free loopback TCP port.
type CaddyOptions struct {
	// AdminSocket, when set, is the path of a unix socket for the admin API
	// instead of a TCP port.
	AdminSocket string

	// Config, when set, replaces the default JSON config. The strings
	// ADMIN_LISTEN and HTTP_LISTEN in it are replaced with the admin
	// listener and srv0's listen address.
	Config []byte
}

// Caddy is a running Caddy process.
type Caddy struct {
	// AdminURL is the admin endpoint as the router takes it:
	// "http://127.0.0.1:PORT" or "unix//path/to/admin.sock".
	AdminURL string
	// AdminAddr is the admin listener: host:port, or the socket path.
	AdminAddr string
	// HTTPAddr is srv0's listen address, 127.0.0.1:PORT.
	HTTPAddr string
	// Server is the name of the HTTP server in the default config.
	Server string

	dir        string
	configPath string
	binary     string
	cmd        *exec.Cmd
	exited     chan struct{}
	admin      *http.Client
	proxy      *http.Client
}

// StartCaddy starts Caddy and waits until its admin API responds. Stop it
// with Stop.
func StartCaddy(ctx context.Context, opts CaddyOptions) (*Caddy, error) {
	bin, err := caddyBinary()
	if err != nil {
		return nil, err
	}

	reaper, err := startReaper()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(reaper, "caddy-")
	if err != nil {
		return nil, fmt.Errorf("creating Caddy folder: %w", err)
	}

	// choose the listeners
	httpAddr, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	c := &Caddy{HTTPAddr: httpAddr, Server: "srv0", dir: dir, binary: bin}
	if opts.AdminSocket != "" {
		c.AdminAddr = opts.AdminSocket
		c.AdminURL = "unix/" + opts.AdminSocket
	} else {
		if c.AdminAddr, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
		c.AdminURL = "http://" + c.AdminAddr
	}
	c.admin = adminHTTPClient(opts.AdminSocket)
	c.proxy = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}

	// write the config
	config := opts.Config
	if config == nil {
		config = []byte(defaultCaddyConfig)
	}
	adminListen := c.AdminAddr
	if opts.AdminSocket != "" {
		adminListen = "unix/" + opts.AdminSocket
	}
	config = bytes.ReplaceAll(config, []byte(AdminListenPlaceholder), []byte(adminListen))
	config = bytes.ReplaceAll(config, []byte(HTTPListenPlaceholder), []byte(httpAddr))
	c.configPath = filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(c.configPath, config, 0o600); err != nil {
		return nil, fmt.Errorf("writing Caddy config: %w", err)
	}

	if err := c.start(ctx); err != nil {
		return nil, err
	}

	return c, nil
}

// adminHTTPClient returns a client that reaches the admin API over TCP or,
// when socket is set, over that unix socket.
func adminHTTPClient(socket string) *http.Client {
	// Caddy replaces its admin server on every config change, so a kept-alive
	// connection fails on the next request.
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if socket != "" {
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}
	}

	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

// start runs the Caddy process on the written config and waits for the admin
// API.
func (c *Caddy) start(ctx context.Context) error {
	logFile, err := os.OpenFile(filepath.Join(c.dir, "caddy.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("opening Caddy log: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command(c.binary, "run", "--config", c.configPath)
	cmd.Env = append(os.Environ(),
		"HOME="+c.dir,
		"XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(c.dir, "data"),
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting Caddy: %w", err)
	}
	if err := trackPID(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return err
	}

	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited

	// wait for the admin API
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, _, err := c.Admin(ctx, http.MethodGet, "/config/", nil)
		if err == nil && status == http.StatusOK {
			return nil
		}

		select {
		case <-exited:
			return fmt.Errorf("caddy exited during start-up; log:\n%s", c.LogTail())
		case <-ctx.Done():
			c.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Kill()
			return fmt.Errorf("caddy admin API at %s not ready after 30s (last error: %v); log:\n%s", c.AdminURL, err, c.LogTail())
		}
	}
}

// Admin sends one request to the admin API with a Host header that Caddy
// accepts and returns the status, the Etag header and the body.
func (c *Caddy) Admin(ctx context.Context, method, path string, body []byte) (status int, etag string, respBody []byte, err error) {
	host := c.AdminAddr
	if strings.HasPrefix(c.AdminURL, "unix/") {
		host = "localhost"
	}

	req, err := http.NewRequestWithContext(ctx, method, "http://"+host+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.admin.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()

	respBody, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))

	return resp.StatusCode, resp.Header.Get("Etag"), respBody, err
}

// Get sends a GET for path through srv0 with the given Host header and
// returns the status and body.
func (c *Caddy) Get(ctx context.Context, host, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.HTTPAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host

	resp, err := c.proxy.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))

	return resp.StatusCode, string(body), err
}

// Kill ends Caddy with SIGKILL, as a crash would, and waits for it to exit.
func (c *Caddy) Kill() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}

	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.exited
}

// Restart kills Caddy and starts it again with its base config on the same
// ports, as a restart without --resume would: every route added through the
// admin API is gone.
func (c *Caddy) Restart(ctx context.Context) error {
	c.Kill()
	return c.start(ctx)
}

// Stop ends Caddy gracefully, or kills it after 10 seconds.
func (c *Caddy) Stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}

	select {
	case <-c.exited:
		return nil
	default:
	}

	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
		c.Kill()
		return errors.New("caddy did not stop within 10s of SIGTERM and was killed")
	}
}

// LogTail returns the last 4 KiB of Caddy's log, for error messages.
func (c *Caddy) LogTail() string {
	data, err := os.ReadFile(filepath.Join(c.dir, "caddy.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(data) > 4096 {
		data = data[len(data)-4096:]
	}

	return string(data)
}

// FreeLoopbackAddr returns 127.0.0.1:PORT for a port that was free a moment
// ago.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()

	return l.Addr().String(), nil
}

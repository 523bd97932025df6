package caddyapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Log keys used by this package.
const (
	logKeyAdminURL = "admin_url"
	logKeyAttempt  = "attempt"
	logKeyErr      = "err"
	logKeyRoute    = "route"
)

// maxMessageBytes limits how much of a response body that is not Caddy's
// JSON error goes into an [Error] message.
const maxMessageBytes = 512

// Client changes the routes that the router owns in one Caddy instance
// through its admin API. A Client is safe for concurrent use, and all
// Clients in a process that share an admin URL send at most one write at a
// time.
type Client struct {
	cfg      Config
	endpoint endpoint
	http     *http.Client
	log      *slog.Logger
	lock     instanceLock

	// afterRead, when set, runs after each read of Apply and before its
	// write. Tests use it to change the config in between.
	afterRead func(attempt int)
}

// New validates cfg, fills in its defaults and returns a Client. It sends
// no request, so Caddy need not be running yet.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}

	ep, err := parseAdminURL(cfg.AdminURL)
	if err != nil {
		return nil, err
	}

	c := &Client{
		cfg:      cfg,
		endpoint: ep,
		http:     &http.Client{Transport: newTransport(ep, cfg.Timeout)},
		log:      cfg.Logger.With(logKeyAdminURL, cfg.AdminURL),
		lock:     lockFor(ep.lockKey),
	}

	return c, nil
}

// newTransport returns a transport that never uses a proxy from the
// environment and dials the unix socket when ep has one. The request
// context of do bounds the whole exchange, so the transport sets only a
// dial timeout.
func newTransport(ep endpoint, timeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: timeout}
	t := &http.Transport{
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// Caddy closes admin connections on every config change
		DisableKeepAlives: true,
	}

	if ep.socket != "" {
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", ep.socket)
		}
	}

	return t
}

// response is a complete admin API response with a 2xx status.
type response struct {
	status int
	etag   string
	body   []byte
}

// do sends one request and reads the response within the configured
// timeout. A status outside 2xx becomes an [*Error] classified by
// classifyStatus.
func (c *Client) do(ctx context.Context, method, path string, body []byte, ifMatch string) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	// build the request
	u := url.URL{Scheme: "http", Host: c.endpoint.host, Path: path}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		return response{}, c.newError(ErrUnexpectedResponse, method, path, 0, "", "", fmt.Errorf("building request: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.endpoint.origin != "" {
		req.Header.Set("Origin", c.endpoint.origin)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}

	// send it
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		observeRequest(method, 0, time.Since(start))
		return response{}, c.unreachable(ctx, method, path, time.Since(start), err)
	}
	defer resp.Body.Close()

	// read the body within the size limit
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	observeRequest(method, resp.StatusCode, time.Since(start))
	if err != nil {
		return response{}, c.unreachable(ctx, method, path, time.Since(start), fmt.Errorf("reading response body: %w", err))
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		hint := fmt.Sprintf("the body exceeds %d bytes; raise Config.MaxResponseBytes", c.cfg.MaxResponseBytes)
		return response{}, c.newError(ErrUnexpectedResponse, method, path, resp.StatusCode, "", hint, nil)
	}

	// classify the status
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		kind, hint := c.classifyStatus(method, resp.StatusCode, caddyMessage(data))
		return response{}, c.newError(kind, method, path, resp.StatusCode, caddyMessage(data), hint, nil)
	}

	return response{status: resp.StatusCode, etag: resp.Header.Get("Etag"), body: data}, nil
}

// unreachable wraps a transport error that came after elapsed. For a write
// it adds that Caddy may have applied the change.
func (c *Client) unreachable(ctx context.Context, method, path string, elapsed time.Duration, err error) error {
	var hint string
	var netErr net.Error
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout()
	if timedOut {
		// the caller's deadline may be shorter than Config.Timeout
		hint = fmt.Sprintf("timed out after %v (Config.Timeout is %v); check that Caddy listens at the admin URL", elapsed.Round(time.Millisecond), c.cfg.Timeout)
	} else {
		hint = "check that Caddy is running and listens at the admin URL"
	}

	if method != http.MethodGet {
		hint += "; the write may or may not have been applied, and the next Apply reads the result"
	}

	apiErr := c.newError(ErrUnreachable, method, path, 0, "", hint, err)
	apiErr.timedOut = timedOut

	return apiErr
}

// classifyStatus returns the kind of a non-2xx response and a hint. Caddy
// v2.11.9 responds with 400 to a read of a path it cannot traverse, 404 to a
// missing @id, 412 to a failed If-Match, and 400, or 500 with "loading new
// config: ...", to a config that fails to index or load.
func (c *Client) classifyStatus(method string, status int, message string) (kind error, hint string) {
	isRead := method == http.MethodGet

	switch {
	case status == http.StatusForbidden:
		return ErrForbidden, fmt.Sprintf("admin URL %s: Caddy accepts only a Host header that is in admin.origins, "+
			"or for a loopback listener localhost, 127.0.0.1 or [::1] with the port of admin.listen; "+
			"set the admin URL to the address in admin.listen", c.cfg.AdminURL)
	case status == http.StatusPreconditionFailed:
		return ErrConflict, "another client changed the config after it was read"
	case status == http.StatusNotFound:
		return ErrMissing, c.missingHint()
	case status == http.StatusBadRequest && isRead:
		return ErrMissing, c.missingHint()
	case status == http.StatusBadRequest || status == http.StatusConflict:
		return ErrRejected, "Caddy kept its previous config"
	case status >= 500 && !isRead && strings.HasPrefix(message, "loading new config"):
		return ErrRejected, "Caddy kept its previous config"
	default:
		return ErrUnexpectedResponse, ""
	}
}

// missingHint returns where the client expected the routes array and how
// to fix the config.
func (c *Client) missingHint() string {
	if c.cfg.SubrouteID != "" {
		return fmt.Sprintf(`the base config needs a subroute handler with "@id": %q; set Config.SubrouteID to an existing id`, c.cfg.SubrouteID)
	}

	return fmt.Sprintf("the base config needs apps.http.servers.%s; set Config.Server to an existing server name", c.cfg.Server)
}

// newError builds an [*Error] for a request of c.
func (c *Client) newError(kind error, method, path string, status int, message, hint string, err error) *Error {
	return &Error{
		Kind:       kind,
		AdminURL:   c.cfg.AdminURL,
		Method:     method,
		Path:       path,
		StatusCode: status,
		Message:    message,
		Hint:       hint,
		Err:        err,
	}
}

// caddyMessage returns the "error" field of a Caddy error body, or the
// start of the body when it is not such JSON.
func caddyMessage(body []byte) string {
	var apiErr struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &apiErr); err == nil && apiErr.Error != "" {
		return apiErr.Error
	}

	text := strings.TrimSpace(string(body))
	if len(text) > maxMessageBytes {
		text = strings.ToValidUTF8(text[:maxMessageBytes], "") + "..."
	}

	return text
}

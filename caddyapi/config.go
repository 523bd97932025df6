package caddyapi

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Defaults for the zero values of [Config].
const (
	// DefaultAdminURL is Caddy's default admin listener.
	DefaultAdminURL = "http://localhost:2019"

	// DefaultServer is the name that Caddy's Caddyfile adapter gives the
	// first HTTP server.
	DefaultServer = "srv0"

	// DefaultIDPrefix is the @id prefix of the routes the router owns.
	DefaultIDPrefix = "k8s-router."

	// DefaultTimeout bounds each admin API request, including the reload
	// that a write triggers. Caddy v2.11.9 spends about 0.14 ms of CPU per
	// route on a reload, so 5,000 routes take about 0.7 s.
	DefaultTimeout = 10 * time.Second

	// DefaultMaxAttempts is how many read-and-write rounds Apply makes when
	// Caddy responds with 412 because another client changed the config, or
	// when a request gets no response.
	DefaultMaxAttempts = 5

	// DefaultRetryDelay is the backoff before the second attempt. It doubles
	// on each further attempt, up to maxRetryDelay.
	DefaultRetryDelay = 100 * time.Millisecond

	// DefaultMaxResponseBytes limits how much of a response body is read.
	// A route as the router writes it is about 400 bytes of JSON, so the
	// default leaves room for well over 50,000 routes.
	DefaultMaxResponseBytes = 32 << 20
)

// Defaults for the zero values of [ProxySettings].
//
// NOTE: these values are reasoned, not measured. Adjust them once a
// benchmark has measured reload cost and websocket behaviour with them.
const (
	// DefaultTryDuration lets a request that finds its upstream down wait
	// up to 5s for another one, which covers a pod being replaced.
	DefaultTryDuration = 5 * time.Second

	// DefaultTryInterval is Caddy's own default wait between tries when
	// try_duration is set.
	DefaultTryInterval = 250 * time.Millisecond

	// DefaultStreamCloseDelay keeps websockets open for 5 minutes after a
	// reload instead of closing them at once.
	DefaultStreamCloseDelay = 5 * time.Minute

	// DefaultKeepAliveIdle closes idle upstream connections after 30s, so
	// the transports of replaced configs are released sooner than with
	// Caddy's default of 2 minutes.
	DefaultKeepAliveIdle = 30 * time.Second
)

// maxRetryDelay caps the backoff between attempts of Apply.
const maxRetryDelay = 2 * time.Second

// Config of a [Client]. Zero values take the defaults above.
type Config struct {
	// AdminURL is Caddy's admin endpoint: "http://host:port" for a TCP
	// listener or "unix//path/to/admin.sock" for a unix socket, the form of
	// Caddy's admin.listen. The port is required, because Caddy compares the
	// Host header, port included, with its allowed origins. Default
	// [DefaultAdminURL].
	AdminURL string

	// Server is the name of the HTTP server under apps.http.servers whose
	// routes are managed. Ignored when SubrouteID is set. Default
	// [DefaultServer].
	Server string

	// SubrouteID, when set, is the @id of a subroute handler in the base
	// config. The client then manages that handler's routes instead of the
	// server's, so operators can put their own routes before and after it.
	SubrouteID string

	// IDPrefix is the @id prefix that marks a route as owned by the router.
	// Routes without it are never changed, removed or reordered. It must
	// not contain '/', '?', '#', '%', whitespace or control characters,
	// because Caddy addresses ids in the URL path /id/<id>. Default
	// [DefaultIDPrefix].
	IDPrefix string

	// Timeout bounds each request. Default [DefaultTimeout].
	Timeout time.Duration

	// MaxAttempts is how many times Apply reads and writes when Caddy
	// responds with 412 or a request gets no response other than by timing
	// out. Owned and Check repeat their read as often. Default
	// [DefaultMaxAttempts].
	MaxAttempts int

	// RetryDelay is the backoff before the second attempt of Apply. Default
	// [DefaultRetryDelay].
	RetryDelay time.Duration

	// MaxResponseBytes limits how many bytes of a response body are read.
	// A larger body fails with [ErrUnexpectedResponse]. Default
	// [DefaultMaxResponseBytes].
	MaxResponseBytes int64

	// Proxy holds the reverse_proxy settings of every owned route.
	Proxy ProxySettings

	// Logger receives retry and change logs. Default slog.Default().
	Logger *slog.Logger
}

// ProxySettings are the reverse_proxy handler settings that the client
// writes into every owned route. A zero field takes its default, and a
// negative field leaves the setting out of the route, so that Caddy uses its
// own default.
type ProxySettings struct {
	// TryDuration is load_balancing.try_duration: how long Caddy keeps
	// trying upstreams for a request when the chosen one is down. By
	// default Caddy retries only GET requests. Caddy's own default is 0, no
	// retries. Default [DefaultTryDuration].
	TryDuration time.Duration

	// TryInterval is load_balancing.try_interval: the wait between tries.
	// It is written only when TryDuration is. Default [DefaultTryInterval].
	TryInterval time.Duration

	// StreamCloseDelay is stream_close_delay: how long upgraded connections
	// such as websockets stay open after a reload replaces the handler.
	// Caddy's own default is 0, which closes them on every config change
	// for every route. Default [DefaultStreamCloseDelay].
	StreamCloseDelay time.Duration

	// KeepAliveIdle is transport.keep_alive.idle_timeout of the "http"
	// transport: how long an idle upstream connection stays open. Each
	// reload keeps the old transports in memory until their idle
	// connections close, so a shorter timeout frees them sooner. Caddy's own
	// default is 2 minutes. Default [DefaultKeepAliveIdle].
	KeepAliveIdle time.Duration
}

// withDefaults returns p with zero fields set to their defaults and negative
// fields set to zero, which leaves them out of the route.
func (p ProxySettings) withDefaults() ProxySettings {
	pick := func(value, fallback time.Duration) time.Duration {
		switch {
		case value < 0:
			return 0
		case value == 0:
			return fallback
		default:
			return value
		}
	}

	return ProxySettings{
		TryDuration:      pick(p.TryDuration, DefaultTryDuration),
		TryInterval:      pick(p.TryInterval, DefaultTryInterval),
		StreamCloseDelay: pick(p.StreamCloseDelay, DefaultStreamCloseDelay),
		KeepAliveIdle:    pick(p.KeepAliveIdle, DefaultKeepAliveIdle),
	}
}

// withDefaults returns cfg with every zero field set to its default, or an
// error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.AdminURL == "" {
		cfg.AdminURL = DefaultAdminURL
	}
	if cfg.Server == "" {
		cfg.Server = DefaultServer
	}
	if cfg.IDPrefix == "" {
		cfg.IDPrefix = DefaultIDPrefix
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Proxy = cfg.Proxy.withDefaults()

	// check the values that have no useful negative meaning
	if cfg.Timeout < 0 {
		return cfg, fmt.Errorf("caddyapi: timeout %v is negative: expected a positive duration such as %v", cfg.Timeout, DefaultTimeout)
	}
	if cfg.MaxAttempts < 0 {
		return cfg, fmt.Errorf("caddyapi: max attempts %d is negative: expected a positive count such as %d", cfg.MaxAttempts, DefaultMaxAttempts)
	}
	if cfg.RetryDelay < 0 {
		return cfg, fmt.Errorf("caddyapi: retry delay %v is negative: expected a positive duration such as %v", cfg.RetryDelay, DefaultRetryDelay)
	}
	if cfg.MaxResponseBytes < 0 {
		return cfg, fmt.Errorf("caddyapi: max response bytes %d is negative: expected a positive size such as %d", cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	}

	// check the names that end up in admin API paths
	if err := validatePathName("route id prefix", cfg.IDPrefix, DefaultIDPrefix); err != nil {
		return cfg, err
	}
	if err := validatePathName("server name", cfg.Server, DefaultServer); err != nil {
		return cfg, err
	}
	if cfg.SubrouteID != "" {
		if err := validatePathName("subroute id", cfg.SubrouteID, "k8s-routes"); err != nil {
			return cfg, err
		}
		if strings.HasPrefix(cfg.SubrouteID, cfg.IDPrefix) {
			return cfg, fmt.Errorf("caddyapi: subroute id %q starts with the route id prefix %q, so it would look like an owned route: choose an id without that prefix", cfg.SubrouteID, cfg.IDPrefix)
		}
	}

	return cfg, nil
}

// validatePathName returns an error if value, a name that the client puts
// into an admin API path or compares with @id values, contains characters
// that break that path. subject names the value and example is a valid one.
func validatePathName(subject, value, example string) error {
	for _, r := range value {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("caddyapi: %s %q contains whitespace or a control character: expected a name such as %q", subject, value, example)
		}

		if strings.ContainsRune("/?#%", r) {
			return fmt.Errorf("caddyapi: %s %q contains %q, which Caddy cannot address in an admin API path: expected a name such as %q", subject, value, r, example)
		}
	}

	return nil
}

// endpoint is a parsed admin URL.
type endpoint struct {
	// socket is the unix socket path, or empty for TCP.
	socket string
	// host is the Host header and URL host: host:port for TCP, "localhost"
	// for a unix socket, where Caddy does not check it.
	host string
	// origin is the Origin header, empty for a unix socket, where Caddy
	// rejects any Origin.
	origin string
	// lockKey identifies the Caddy instance for the write lock.
	lockKey string
}

// parseAdminURL parses "http://host:port" or "unix//path/to/admin.sock".
func parseAdminURL(raw string) (endpoint, error) {
	const fix = `expected "http://host:port" such as "` + DefaultAdminURL + `" or "unix//path/to/admin.sock"`

	// unix socket
	if socket, ok := strings.CutPrefix(raw, "unix/"); ok {
		if socket == "" {
			return endpoint{}, fmt.Errorf("caddyapi: admin URL %q has no socket path: %s", raw, fix)
		}

		return endpoint{socket: socket, host: "localhost", lockKey: "unix:" + socket}, nil
	}

	// TCP
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("caddyapi: admin URL %q is invalid: %w: %s", raw, err, fix)
	}
	if u.Scheme != "http" {
		return endpoint{}, fmt.Errorf("caddyapi: admin URL %q has scheme %q: %s", raw, u.Scheme, fix)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return endpoint{}, fmt.Errorf("caddyapi: admin URL %q has a path, query, fragment or user: %s", raw, fix)
	}

	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return endpoint{}, fmt.Errorf("caddyapi: admin URL %q has no host and port: %s", raw, fix)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return endpoint{}, fmt.Errorf("caddyapi: admin URL %q has invalid port %q: %s", raw, port, fix)
	}

	return endpoint{
		host:    u.Host,
		origin:  "http://" + u.Host,
		lockKey: "tcp:" + strings.ToLower(u.Host),
	}, nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/caddy-k8s-router/caddy-k8s-router/caddyapi"
	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// allNamespaces is the --namespace value that watches every namespace.
const allNamespaces = "*"

// config is the router's validated configuration.
type config struct {
	namespaces    []string
	baseDomain    string
	hostTemplate  string
	defaultPort   int32
	routeIDPrefix string
	ipFamily      corev1.IPFamily
	kubeconfig    string

	caddyAdmin      string
	caddyServer     string
	caddySubrouteID string
	proxy           caddyapi.ProxySettings

	webhookHost    string
	webhookPort    int
	webhookCertDir string

	healthAddr     string
	logLevel       slog.Level
	logFormat      string
	workers        int
	resyncPeriod   time.Duration
	driftInterval  time.Duration
	probeInterval  time.Duration
	writePerChange bool
}

// configError is an invalid setting. main prints it and exits with code 2.
type configError struct {
	source string // the flag or environment variable that set the value
	value  string
	want   string
	// missing reports that no flag or variable set the value.
	missing bool
}

func (e *configError) Error() string {
	if e.missing {
		return fmt.Sprintf("missing %s: %s", e.source, e.want)
	}

	return fmt.Sprintf("invalid %s %q: %s", e.source, e.value, e.want)
}

// option is one setting: a flag with an environment variable as fallback.
type option struct {
	flag    string
	env     string
	def     string
	usage   string
	value   string
	fromEnv bool
	// set reports that the flag was given on the command line.
	set bool
	// boolean lets the flag stand alone, as --flag for --flag=true.
	boolean bool
}

// flagValue adapts an option to flag.Value.
type flagValue struct{ o *option }

func (v flagValue) String() string {
	if v.o == nil {
		return ""
	}

	return v.o.value
}

func (v flagValue) Set(s string) error {
	v.o.value = s
	return nil
}

// IsBoolFlag reports to the flag package whether the option may stand
// alone, as a boolean flag can.
func (v flagValue) IsBoolFlag() bool {
	return v.o != nil && v.o.boolean
}

// source names where the option's value came from, for error messages. An
// option set nowhere names both places it can be set.
func (o *option) source() string {
	switch {
	case o.fromEnv:
		return "environment variable " + o.env
	case o.unset():
		return "flag --" + o.flag + " (or environment variable " + o.env + ")"
	default:
		return "flag --" + o.flag
	}
}

// unset reports whether neither a flag, a variable nor a default gave the
// option a value.
func (o *option) unset() bool {
	return !o.set && !o.fromEnv && o.value == "" && o.def == ""
}

// errPrinted marks an error that the flag package has printed already.
var errPrinted = errors.New("invalid command line")

// options lists every setting, in the order of the help text.
func options() []*option {
	return []*option{
		{flag: "namespace", env: "K8S_NAMESPACE", usage: "namespaces to watch, comma-separated, or * for all (required)"},
		{flag: "base-domain", env: "K8S_BASE_DOMAIN", usage: "base domain of the workspace hosts, e.g. gitspaces.example.com (required)"},
		{flag: "host-template", env: "HOST_TEMPLATE", def: routing.DefaultHostTemplate, usage: "host label(s) before the base domain; placeholders {name} and {namespace}"},
		{flag: "default-port", env: "K8S_DEFAULT_PORT", def: strconv.Itoa(routing.DefaultPort), usage: "upstream port of Deployments without the " + routing.AnnotationPort + " annotation"},
		{flag: "route-id-prefix", env: "ROUTE_ID_PREFIX", def: routing.DefaultRouteIDPrefix, usage: "prefix of the Caddy @id of every route the router owns"},
		{flag: "ip-family", env: "IP_FAMILY", usage: "address of dual-stack pods to route to: IPv4, IPv6, or empty for the pod's primary IP"},
		{flag: "kubeconfig", env: "KUBECONFIG", usage: "kubeconfig file; empty uses the in-cluster service account"},
		{flag: "caddy-admin", env: "CADDY_ADMIN_URL", def: caddyapi.DefaultAdminURL, usage: "Caddy admin endpoint: http://host:port or unix//path/to/admin.sock"},
		{flag: "caddy-server", env: "CADDY_SERVER_NAME", def: caddyapi.DefaultServer, usage: "Caddy HTTP server whose routes array the router manages"},
		{flag: "caddy-subroute-id", env: "CADDY_SUBROUTE_ID", usage: "manage the routes of the subroute handler with this @id instead of the server's routes"},
		{flag: "try-duration", env: "CADDY_TRY_DURATION", def: caddyapi.DefaultTryDuration.String(), usage: "reverse_proxy try_duration: how long a request may retry other pods; 0 uses Caddy's default (no retries)"},
		{flag: "stream-close-delay", env: "CADDY_STREAM_CLOSE_DELAY", def: caddyapi.DefaultStreamCloseDelay.String(), usage: "reverse_proxy stream_close_delay: how long websockets survive a config reload; 0 uses Caddy's default (closed at once)"},
		{flag: "keepalive-idle", env: "CADDY_KEEPALIVE_IDLE", def: caddyapi.DefaultKeepAliveIdle.String(), usage: "idle timeout of upstream keep-alive connections; 0 uses Caddy's default (2m)"},
		{flag: "webhook-port", env: "WEBHOOK_PORT", def: "9443", usage: "HTTPS port of the admission webhook; 0 disables the webhook"},
		{flag: "webhook-host", env: "WEBHOOK_HOST", usage: "address the webhook binds; empty binds all"},
		{flag: "webhook-cert-dir", env: "WEBHOOK_CERT_DIR", def: filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"), usage: "folder with the webhook's tls.crt and tls.key, reloaded when they change"},
		{flag: "health-addr", env: "HEALTH_ADDR", def: ":8081", usage: "address of /healthz, /readyz and /metrics"},
		{flag: "log-level", env: "LOG_LEVEL", def: "info", usage: "log level: debug, info, warn or error"},
		{flag: "log-format", env: "LOG_FORMAT", def: "json", usage: "log format: json or text"},
		{flag: "workers", env: "WORKERS", def: "4", usage: "Deployments synced in parallel"},
		{flag: "resync-period", env: "RESYNC_PERIOD", def: "10m", usage: "informer resync period"},
		{flag: "drift-interval", env: "DRIFT_INTERVAL", def: "10s", usage: "how often Caddy's routes are read back and repaired if they differ"},
		{flag: "probe-interval", env: "PROBE_INTERVAL", def: "1s", usage: "how often the first route id is read from Caddy to notice lost routes between drift checks; 0 turns it off"},
		{flag: "write-per-change", env: "WRITE_PER_CHANGE", def: "false", boolean: true, usage: "write every change to Caddy on its own instead of combining changes (for benchmarks only)"},
	}
}

// parseConfig reads the flags in args, with environment variables from
// getenv as fallbacks, and validates every value.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	opts := options()
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: router [flags]\n\nRoutes every Ready Deployment through Caddy at <name>.<base domain>.\nEach flag falls back to the environment variable in brackets.\n\nFlags:")
		fs.PrintDefaults()
	}
	byFlag := map[string]*option{}
	for _, o := range opts {
		o.value = o.def
		if v := getenv(o.env); v != "" {
			o.value, o.fromEnv = v, true
		}
		usage := fmt.Sprintf("%s [%s]", o.usage, o.env)
		fs.Var(flagValue{o}, o.flag, usage)
		byFlag[o.flag] = o
	}
	if err := fs.Parse(args); err != nil {
		// the flag package has printed the error and the usage already
		return nil, fmt.Errorf("%w: %w", errPrinted, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: the router takes only flags", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		byFlag[f.Name].fromEnv = false
		byFlag[f.Name].set = true
	})

	p := &parser{opts: byFlag}
	cfg := &config{
		namespaces:      p.namespaces("namespace"),
		hostTemplate:    p.str("host-template"),
		defaultPort:     int32(p.integer("default-port", 1, 65535)),
		routeIDPrefix:   p.str("route-id-prefix"),
		ipFamily:        corev1.IPFamily(p.oneOf("ip-family", "", "IPv4", "IPv6")),
		kubeconfig:      p.str("kubeconfig"),
		caddyAdmin:      p.str("caddy-admin"),
		caddyServer:     p.str("caddy-server"),
		caddySubrouteID: p.str("caddy-subroute-id"),
		webhookHost:     p.str("webhook-host"),
		webhookPort:     p.integer("webhook-port", 0, 65535),
		webhookCertDir:  p.str("webhook-cert-dir"),
		healthAddr:      p.str("health-addr"),
		logFormat:       p.oneOf("log-format", "json", "text"),
		workers:         p.integer("workers", 1, 64),
		resyncPeriod:    p.duration("resync-period", time.Second),
		driftInterval:   p.duration("drift-interval", 100*time.Millisecond),
		probeInterval:   p.duration("probe-interval", 0),
		writePerChange:  p.boolean("write-per-change"),
		proxy: caddyapi.ProxySettings{
			TryDuration:      p.proxyDuration("try-duration"),
			StreamCloseDelay: p.proxyDuration("stream-close-delay"),
			KeepAliveIdle:    p.proxyDuration("keepalive-idle"),
		},
	}
	cfg.logLevel = p.level("log-level")

	// values checked by the packages that use them
	if byFlag["base-domain"].value == "" {
		p.fail(byFlag["base-domain"], "required: the DNS domain under which each workspace gets <name>.<domain>, e.g. gitspaces.example.com")
	}
	p.check("base-domain", func(value string) (err error) {
		cfg.baseDomain, err = routing.NormalizeBaseDomain(value)
		return err
	})
	p.check("host-template", func(value string) error {
		_, err := routing.NewNamer(cfg.baseDomain, value)
		return err
	})
	p.check("route-id-prefix", routing.ValidateRouteIDPrefix)

	return cfg, p.err
}

// parser converts option values and keeps the first error.
type parser struct {
	opts map[string]*option
	err  error
}

func (p *parser) fail(o *option, want string) {
	if p.err == nil {
		p.err = &configError{source: o.source(), value: o.value, want: want, missing: o.unset()}
	}
}

// check runs validate on the option's value, unless an earlier option
// failed, and keeps its error with the option's source.
func (p *parser) check(name string, validate func(string) error) {
	if p.err != nil {
		return
	}

	o := p.opts[name]
	if err := validate(o.value); err != nil {
		p.err = fmt.Errorf("invalid %s %q: %w", o.source(), o.value, err)
	}
}

func (p *parser) str(name string) string {
	return p.opts[name].value
}

func (p *parser) integer(name string, lo, hi int) int {
	o := p.opts[name]
	n, err := strconv.Atoi(o.value)
	if err != nil || n < lo || n > hi {
		p.fail(o, fmt.Sprintf("expected a whole number from %d to %d", lo, hi))
	}

	return n
}

func (p *parser) duration(name string, lo time.Duration) time.Duration {
	o := p.opts[name]
	d, err := time.ParseDuration(o.value)
	if err != nil || d < lo {
		p.fail(o, fmt.Sprintf("expected a duration such as 10s or 5m, at least %s", lo))
	}

	return d
}

// proxyDuration parses a Caddy proxy setting, where 0 means Caddy's own
// default; caddyapi takes a negative value for that.
func (p *parser) proxyDuration(name string) time.Duration {
	d := p.duration(name, 0)
	if d == 0 {
		return -1
	}

	return d
}

func (p *parser) boolean(name string) bool {
	o := p.opts[name]
	b, err := strconv.ParseBool(o.value)
	if err != nil {
		p.fail(o, "expected true or false")
	}

	return b
}

func (p *parser) oneOf(name string, allowed ...string) string {
	o := p.opts[name]
	for _, a := range allowed {
		if o.value == a {
			return o.value
		}
	}

	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	p.fail(o, "expected one of "+strings.Join(quoted, ", "))

	return ""
}

func (p *parser) level(name string) slog.Level {
	o := p.opts[name]
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.value)); err != nil {
		p.fail(o, "expected debug, info, warn or error")
	}

	return level
}

// namespaces parses a comma-separated list, or * for all namespaces, which
// the controller takes as [""].
func (p *parser) namespaces(name string) []string {
	o := p.opts[name]
	if o.value == "" {
		p.fail(o, "required: the namespace(s) whose Deployments are routed, comma-separated, or * for all")
		return nil
	}
	if o.value == allNamespaces {
		return []string{""}
	}

	var namespaces []string
	seen := map[string]bool{}
	for _, ns := range strings.Split(o.value, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" || ns == allNamespaces || len(validation.IsDNS1123Label(ns)) > 0 {
			p.fail(o, "expected namespace names (DNS-1123 labels) separated by commas, or * alone for all namespaces")
			return nil
		}
		if !seen[ns] {
			seen[ns] = true
			namespaces = append(namespaces, ns)
		}
	}

	return namespaces
}

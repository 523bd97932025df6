package webhook

import (
	"crypto/tls"
	"net/http"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is the URL path the server serves the Deployment handler at. A
// MutatingWebhookConfiguration must point its clientConfig here.
const Path = "/mutate-apps-v1-deployment"

// Options configures [NewServer]. The zero value serves on port 9443 on all
// addresses with tls.crt and tls.key from controller-runtime's default
// certificate folder.
type Options struct {
	// Host is the address to bind. Empty binds all addresses.
	Host string

	// Port is the TCP port to serve on. Zero means 9443.
	Port int

	// CertDir is the folder holding the serving certificate and key. Empty
	// means <temp dir>/k8s-webhook-server/serving-certs. The server reloads
	// both files when they change, so a renewed certificate needs no restart.
	CertDir string

	// CertName is the PEM certificate file in CertDir, with any intermediate
	// certificates after it. Empty means "tls.crt".
	CertName string

	// KeyName is the PEM private key file in CertDir. Empty means "tls.key".
	KeyName string
}

// NewServer returns a controller-runtime webhook server that serves h at
// [Path] over TLS 1.2 or later. The server reads and watches the
// certificate files when it starts. Start blocks until its context is
// cancelled and the open requests finish, for at most one minute.
func NewServer(opts Options, h *Handler) webhook.Server {
	server := webhook.NewServer(webhook.Options{
		Host:     opts.Host,
		Port:     opts.Port,
		CertDir:  opts.CertDir,
		CertName: opts.CertName,
		KeyName:  opts.KeyName,
		TLSOpts:  []func(*tls.Config){requireTLS12},
	})

	server.Register(Path, NewHTTPHandler(h))

	return server
}

// NewHTTPHandler returns the HTTP handler that decodes AdmissionReview
// requests for h and writes the responses. It accepts only
// admission.k8s.io/v1 AdmissionReview bodies smaller than 7 MiB and returns an
// error response for anything else. Panics in h become error responses.
func NewHTTPHandler(h *Handler) http.Handler {
	// route controller-runtime's own log lines to the handler's logger
	logger := logr.FromSlogHandler(h.logger.Handler())
	hook := &admission.Webhook{
		Handler: h,
		LogConstructor: func(_ logr.Logger, req *admission.Request) logr.Logger {
			return admission.DefaultLogConstructor(logger, req)
		},
	}

	return &reviewGuard{next: hook, logger: h.logger}
}

// requireTLS12 sets the minimum TLS version to 1.2.
func requireTLS12(config *tls.Config) {
	config.MinVersion = tls.VersionTLS12
}

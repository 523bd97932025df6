package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// Log keys shared by every log line of this package.
const (
	logKeyNamespace    = "namespace"
	logKeyDeployment   = "deployment"
	logKeyOperation    = "operation"
	logKeyRequestUID   = "request_uid"
	logKeyHost         = "host"
	logKeyGenerateName = "generate_name"
	logKeyErr          = "err"
)

// Response messages. The API server records them in the admission status.
const (
	MessageIgnored     = "not a create or update of an apps/v1 Deployment; unchanged"
	MessageNoName      = "the object has no name yet; the reconciler sets the host after the name is generated"
	MessageInvalidName = "the name cannot form a host; no route will be created"
	MessageUpToDate    = "the route URL annotation is up to date"
	MessageAnnotated   = "set the route URL annotation"
	MessageEmptyObject = "the admission request has no object"
)

// warningMaxValueLen is the number of runes of a user-supplied value that a
// warning quotes before it cuts the value short.
const warningMaxValueLen = 64

// deploymentKind is the only kind the handler changes.
var deploymentKind = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

// Handler is the admission handler for apps/v1 Deployments. It implements
// [admission.Handler] and is safe for concurrent use.
type Handler struct {
	namer  *routing.Namer
	logger *slog.Logger
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns a Handler that builds hosts with namer, the same Namer
// the reconciler uses, so that both agree. namer must not be nil. A nil
// logger discards the handler's logs.
func NewHandler(namer *routing.Namer, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	return &Handler{namer: namer, logger: logger}
}

// Handle returns the admission response for one request. For a CREATE or
// UPDATE of an apps/v1 Deployment it returns a JSON patch that sets
// [routing.AnnotationRouteURL] to the Deployment's host, or no patch when
// the annotation is already right. A Deployment without a name (created with
// generateName) or with a name that cannot form a host is admitted without
// the annotation. Handle then removes a value the client supplied, and warns
// about the invalid name. Every other request is allowed unchanged. An
// object that cannot be decoded gets an error response with code 400.
// Handle has no side effects, so a dry-run request gets the same response.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if !isDeploymentWrite(req) {
		return admission.Allowed(MessageIgnored)
	}

	// decode only the metadata the patch depends on
	if len(req.Object.Raw) == 0 {
		h.log(ctx, slog.LevelWarn, "Rejected admission request without object", req, req.Name)
		return admission.Errored(http.StatusBadRequest, errors.New(MessageEmptyObject))
	}

	meta, err := decodeMetadata(req.Object.Raw)
	if err != nil {
		err = fmt.Errorf("decoding Deployment %s/%s: %w", req.Namespace, req.Name, err)
		h.log(ctx, slog.LevelWarn, "Rejected undecodable Deployment", req, req.Name, slog.Any(logKeyErr, err))
		return admission.Errored(http.StatusBadRequest, err)
	}

	return h.annotate(ctx, req, meta)
}

// annotate returns the response for a decoded Deployment create or update.
func (h *Handler) annotate(ctx context.Context, req admission.Request, meta *objectMetadata) admission.Response {
	name := meta.Name
	if name == "" {
		name = req.Name
	}
	namespace := req.Namespace
	if namespace == "" {
		namespace = meta.Namespace
	}

	// without a name there is no host yet
	if name == "" {
		h.log(ctx, slog.LevelDebug, "Skipped Deployment without a name", req, name, slog.String(logKeyGenerateName, meta.GenerateName))
		return withoutAnnotation(meta, MessageNoName)
	}

	// build the host
	host, err := h.namer.Host(namespace, name)
	if err != nil {
		h.log(ctx, slog.LevelInfo, "Admitted Deployment without a route", req, name, slog.Any(logKeyErr, err))
		return withoutAnnotation(meta, MessageInvalidName).WithWarnings(warningFor(err))
	}

	// patch the annotation when it differs
	current, found := meta.Annotations[routing.AnnotationRouteURL]
	if found && current == host {
		h.log(ctx, slog.LevelDebug, "Route URL annotation up to date", req, name, slog.String(logKeyHost, host))
		return admission.Allowed(MessageUpToDate)
	}

	h.log(ctx, slog.LevelDebug, "Setting route URL annotation", req, name, slog.String(logKeyHost, host))
	response := admission.Patched(MessageAnnotated, setAnnotation(meta.Annotations, routing.AnnotationRouteURL, host))
	if found && current != "" {
		response = response.WithWarnings(fmt.Sprintf("annotation %s is set by the router: value %q replaced with %q", routing.AnnotationRouteURL, truncate(current), host))
	}

	return response
}

// log writes one line with the request's ids. It checks the level first so
// that requests cost no log allocations when the level is disabled.
func (h *Handler) log(ctx context.Context, level slog.Level, message string, req admission.Request, name string, attrs ...slog.Attr) {
	if !h.logger.Enabled(ctx, level) {
		return
	}

	attrs = append(attrs,
		slog.String(logKeyNamespace, req.Namespace),
		slog.String(logKeyDeployment, name),
		slog.String(logKeyOperation, string(req.Operation)),
		slog.String(logKeyRequestUID, string(req.UID)),
	)
	h.logger.LogAttrs(ctx, level, message, attrs...)
}

// isDeploymentWrite reports whether req creates or updates an apps/v1
// Deployment itself, not one of its subresources.
func isDeploymentWrite(req admission.Request) bool {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return false
	}

	if req.SubResource != "" {
		return false
	}

	gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	return gvk == deploymentKind
}

// withoutAnnotation allows the object and removes a client-supplied route
// URL annotation, because the router owns that key and only it sets a host.
func withoutAnnotation(meta *objectMetadata, message string) admission.Response {
	if _, found := meta.Annotations[routing.AnnotationRouteURL]; !found {
		return admission.Allowed(message)
	}

	return admission.Patched(message, removeAnnotation(routing.AnnotationRouteURL))
}

// warningFor returns the admission warning for err. Values in a
// [routing.HostError] are shortened, because mutating webhooks run before
// the API server checks name lengths, and long warnings may be truncated.
func warningFor(err error) string {
	var hostErr *routing.HostError
	if !errors.As(err, &hostErr) {
		return err.Error()
	}

	short := *hostErr
	short.Value = truncate(short.Value)
	return short.Error()
}

// truncate shortens s to at most warningMaxValueLen runes plus an ellipsis.
func truncate(s string) string {
	runes := []rune(s)
	if len(runes) <= warningMaxValueLen {
		return s
	}

	return string(runes[:warningMaxValueLen]) + "..."
}

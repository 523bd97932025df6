package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// testBaseDomain is the base domain of every test Namer.
const testBaseDomain = "ws.example.test"

// newTestHandler returns a Handler with the given host template that logs
// to t.
func newTestHandler(tb testing.TB, template string) *Handler {
	tb.Helper()

	namer, err := routing.NewNamer(testBaseDomain, template)
	if err != nil {
		tb.Fatal(err)
	}

	return NewHandler(namer, slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// testWriter writes log lines to the test log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// reviewRequest describes one AdmissionReview request body.
type reviewRequest struct {
	operation   string
	group       string
	version     string
	kind        string
	subResource string
	namespace   string
	name        string
	object      string
	oldObject   string
	dryRun      bool
}

// deploymentReview returns a request for an apps/v1 Deployment in the team
// namespace.
func deploymentReview(operation, name, object string) reviewRequest {
	return reviewRequest{
		operation: operation,
		group:     "apps",
		version:   "v1",
		kind:      "Deployment",
		namespace: "team",
		name:      name,
		object:    object,
	}
}

// body returns the raw admission.k8s.io/v1 AdmissionReview JSON.
func (r reviewRequest) body() string {
	object, oldObject := r.object, r.oldObject
	if object == "" {
		object = "null"
	}
	if oldObject == "" {
		oldObject = "null"
	}

	return fmt.Sprintf(`{
  "apiVersion": "admission.k8s.io/v1",
  "kind": "AdmissionReview",
  "request": {
    "uid": "0b7e3d4c-5f1a-4c2e-9d8b-1a2b3c4d5e6f",
    "kind": {"group": %q, "version": %q, "kind": %q},
    "resource": {"group": %q, "version": %q, "resource": "deployments"},
    "subResource": %q,
    "namespace": %q,
    "name": %q,
    "operation": %q,
    "userInfo": {"username": "alice"},
    "object": %s,
    "oldObject": %s,
    "dryRun": %t
  }
}`, r.group, r.version, r.kind, r.group, r.version, r.subResource, r.namespace, r.name, r.operation, object, oldObject, r.dryRun)
}

// deployment returns a raw apps/v1 Deployment with the given metadata
// members, for example `"name": "ws1"`.
func deployment(metadata string) string {
	return `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {` + metadata + `},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ws"}},
    "template": {"metadata": {"labels": {"app": "ws"}},
      "spec": {"containers": [{"name": "ide", "image": "ide:1", "ports": [{"name": "http", "containerPort": 8089}]}]}}}}`
}

// serve posts body to h as JSON and returns the HTTP status and the decoded
// review.
func serve(tb testing.TB, h http.Handler, body string) (int, *admissionv1.AdmissionReview) {
	tb.Helper()

	return serveRequest(tb, h, httpRequest(body, ""))
}

// httpRequest returns a POST of body to Path. An empty contentType means
// application/json.
func httpRequest(body, contentType string) *http.Request {
	if contentType == "" {
		contentType = "application/json"
	}

	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	return req
}

// serveRequest sends req to h and returns the HTTP status and the decoded
// review.
func serveRequest(tb testing.TB, h http.Handler, req *http.Request) (int, *admissionv1.AdmissionReview) {
	tb.Helper()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	return rec.Code, decodeReview(tb, rec.Body.Bytes())
}

// decodeReview decodes a response body and fails the test unless it is a
// review with a response member.
func decodeReview(tb testing.TB, body []byte) *admissionv1.AdmissionReview {
	tb.Helper()

	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		tb.Fatalf("decoding response %q: %v", body, err)
	}
	if review.Response == nil {
		tb.Fatalf("response %q has no response member", body)
	}

	return &review
}

// applyPatch applies the response's patch to object and returns the result,
// or object itself when the response carries no patch. It fails the test if
// an operation touches anything outside /metadata/annotations.
func applyPatch(tb testing.TB, response *admissionv1.AdmissionResponse, object string) string {
	tb.Helper()

	if len(response.Patch) == 0 {
		return object
	}

	if response.PatchType == nil || *response.PatchType != admissionv1.PatchTypeJSONPatch {
		tb.Fatalf("patch type = %v, want JSONPatch", response.PatchType)
	}

	var ops []struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(response.Patch, &ops); err != nil {
		tb.Fatalf("decoding patch %s: %v", response.Patch, err)
	}
	for _, op := range ops {
		if op.Path != annotationsPath && !strings.HasPrefix(op.Path, annotationsPath+"/") {
			tb.Errorf("patch %s touches %s, outside %s", response.Patch, op.Path, annotationsPath)
		}
	}

	patch, err := jsonpatch.DecodePatch(response.Patch)
	if err != nil {
		tb.Fatalf("decoding patch %s: %v", response.Patch, err)
	}
	patched, err := patch.Apply([]byte(object))
	if err != nil {
		tb.Fatalf("applying patch %s: %v", response.Patch, err)
	}

	return string(patched)
}

// assertJSONEqual fails the test unless got and want are the same JSON
// value.
func assertJSONEqual(tb testing.TB, got, want string) {
	tb.Helper()

	if !jsonpatch.Equal([]byte(got), []byte(want)) {
		tb.Errorf("object after patch:\n%s\nwant:\n%s", indent(got), indent(want))
	}
}

func indent(s string) string {
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(s), "", "  "); err != nil {
		return s
	}
	return out.String()
}

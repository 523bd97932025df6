package webhook

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

const (
	hostWS1  = "ws1.ws.example.test"
	keyRoute = `"` + routing.AnnotationRouteURL + `"`
)

func TestHandlerDeployment(t *testing.T) {
	longName := strings.Repeat("a.", 60) + "b"

	tests := []struct {
		name    string
		request reviewRequest
		// want is the object after the patch, or empty for the unchanged
		// object.
		want         string
		wantMessage  string
		wantWarnings []string
	}{
		{
			name:        "create without annotations",
			request:     deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "namespace": "team"`)),
			want:        deployment(`"name": "ws1", "namespace": "team", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage: MessageAnnotated,
		},
		{
			name:        "create with null annotations",
			request:     deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": null`)),
			want:        deployment(`"name": "ws1", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage: MessageAnnotated,
		},
		{
			name:        "create with empty annotations",
			request:     deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {}`)),
			want:        deployment(`"name": "ws1", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage: MessageAnnotated,
		},
		{
			name:        "create keeps other annotations",
			request:     deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {"example.test/owner": "alice", "a~b/c~1": "tilde", "~": "x"}`)),
			want:        deployment(`"name": "ws1", "annotations": {"example.test/owner": "alice", "a~b/c~1": "tilde", "~": "x", ` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage: MessageAnnotated,
		},
		{
			name:         "create replaces client value",
			request:      deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {"example.test/owner": "alice", `+keyRoute+`: "victim.ws.example.test"}`)),
			want:         deployment(`"name": "ws1", "annotations": {"example.test/owner": "alice", ` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage:  MessageAnnotated,
			wantWarnings: []string{`annotation gitspace.caddy.route.url is set by the router: value "victim.ws.example.test" replaced with "ws1.ws.example.test"`},
		},
		{
			name:        "create replaces empty value",
			request:     deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {`+keyRoute+`: ""}`)),
			want:        deployment(`"name": "ws1", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage: MessageAnnotated,
		},
		{
			name:        "create with right value",
			request:     deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {`+keyRoute+`: "`+hostWS1+`"}`)),
			wantMessage: MessageUpToDate,
		},
		{
			name: "update removes annotation",
			request: func() reviewRequest {
				r := deploymentReview("UPDATE", "ws1", deployment(`"name": "ws1", "annotations": {"example.test/owner": "bob"}`))
				r.oldObject = deployment(`"name": "ws1", "annotations": {"example.test/owner": "bob", ` + keyRoute + `: "` + hostWS1 + `"}`)
				return r
			}(),
			want:        deployment(`"name": "ws1", "annotations": {"example.test/owner": "bob", ` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage: MessageAnnotated,
		},
		{
			name: "update changes annotation",
			request: func() reviewRequest {
				r := deploymentReview("UPDATE", "ws1", deployment(`"name": "ws1", "annotations": {`+keyRoute+`: "other.ws.example.test"}`))
				r.oldObject = deployment(`"name": "ws1", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`)
				return r
			}(),
			want:         deployment(`"name": "ws1", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage:  MessageAnnotated,
			wantWarnings: []string{`value "other.ws.example.test" replaced with "ws1.ws.example.test"`},
		},
		{
			name: "update keeps annotation",
			request: func() reviewRequest {
				r := deploymentReview("UPDATE", "ws1", deployment(`"name": "ws1", "annotations": {`+keyRoute+`: "`+hostWS1+`"}`))
				r.oldObject = r.object
				return r
			}(),
			wantMessage: MessageUpToDate,
		},
		{
			name:        "generateName",
			request:     deploymentReview("CREATE", "", deployment(`"generateName": "ws-"`)),
			wantMessage: MessageNoName,
		},
		{
			name:        "generateName with client value",
			request:     deploymentReview("CREATE", "", deployment(`"generateName": "ws-", "annotations": {"example.test/owner": "alice", `+keyRoute+`: "victim.ws.example.test"}`)),
			want:        deployment(`"generateName": "ws-", "annotations": {"example.test/owner": "alice"}`),
			wantMessage: MessageNoName,
		},
		{
			name:         "name with dot",
			request:      deploymentReview("CREATE", "a.b", deployment(`"name": "a.b"`)),
			wantMessage:  MessageInvalidName,
			wantWarnings: []string{`deployment name "a.b" cannot form a host: must be a DNS-1123 label (lower case letters, digits and '-', at most 63 characters, no dots); no route will be created`},
		},
		{
			name:         "name too long",
			request:      deploymentReview("CREATE", strings.Repeat("a", 64), deployment(`"name": "`+strings.Repeat("a", 64)+`"`)),
			wantMessage:  MessageInvalidName,
			wantWarnings: []string{`deployment name "` + strings.Repeat("a", 64) + `" cannot form a host`},
		},
		{
			name:         "long name shortened",
			request:      deploymentReview("CREATE", longName, deployment(`"name": "`+longName+`"`)),
			wantMessage:  MessageInvalidName,
			wantWarnings: []string{`deployment name "` + longName[:64] + `..." cannot form a host`},
		},
		{
			name:         "invalid name with client value",
			request:      deploymentReview("CREATE", "a.b", deployment(`"name": "a.b", "annotations": {`+keyRoute+`: "victim.ws.example.test"}`)),
			want:         deployment(`"name": "a.b", "annotations": {}`),
			wantMessage:  MessageInvalidName,
			wantWarnings: []string{`deployment name "a.b" cannot form a host`},
		},
		{
			name:        "name from request",
			request:     deploymentReview("CREATE", "ws1", deployment(`"labels": {"app": "ws"}`)),
			want:        deployment(`"labels": {"app": "ws"}, "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`),
			wantMessage: MessageAnnotated,
		},
		{
			name: "unknown fields survive",
			request: deploymentReview("CREATE", "ws1", `{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "ws1", "futureMetadata": {"x": [1, 2.5, "three"]}},
  "spec": {"futureField": {"nested": true}, "replicas": 1},
  "futureTopLevel": 12345678901234567890}`),
			want: `{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "ws1", "futureMetadata": {"x": [1, 2.5, "three"]}, "annotations": {` + keyRoute + `: "` + hostWS1 + `"}},
  "spec": {"futureField": {"nested": true}, "replicas": 1},
  "futureTopLevel": 12345678901234567890}`,
			wantMessage: MessageAnnotated,
		},
		{
			name: "delete",
			request: func() reviewRequest {
				r := deploymentReview("DELETE", "ws1", "")
				r.oldObject = deployment(`"name": "ws1"`)
				return r
			}(),
			wantMessage: MessageIgnored,
		},
		{
			name:        "connect",
			request:     deploymentReview("CONNECT", "ws1", deployment(`"name": "ws1"`)),
			wantMessage: MessageIgnored,
		},
		{
			name: "other kind",
			request: reviewRequest{
				operation: "CREATE", version: "v1", kind: "Pod", namespace: "team", name: "ws1",
				object: `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ws1"}}`,
			},
			wantMessage: MessageIgnored,
		},
		{
			name: "other version",
			request: func() reviewRequest {
				r := deploymentReview("CREATE", "ws1", deployment(`"name": "ws1"`))
				r.version = "v1beta2"
				return r
			}(),
			wantMessage: MessageIgnored,
		},
		{
			name: "scale subresource",
			request: func() reviewRequest {
				r := deploymentReview("UPDATE", "ws1", `{"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "ws1"}, "spec": {"replicas": 2}}`)
				r.subResource = "scale"
				return r
			}(),
			wantMessage: MessageIgnored,
		},
	}

	handler := NewHTTPHandler(newTestHandler(t, routing.DefaultHostTemplate))

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, review := serve(t, handler, tt.request.body())
			response := review.Response

			if code != http.StatusOK {
				t.Errorf("HTTP status = %d, want 200", code)
			}
			if !response.Allowed {
				t.Errorf("allowed = false, want true (result %+v)", response.Result)
			}
			if response.UID != "0b7e3d4c-5f1a-4c2e-9d8b-1a2b3c4d5e6f" {
				t.Errorf("uid = %q, want the request uid", response.UID)
			}
			if response.Result == nil || response.Result.Message != tt.wantMessage {
				t.Errorf("result = %+v, want message %q", response.Result, tt.wantMessage)
			}

			want := tt.want
			if want == "" {
				want = tt.request.object
				if len(response.Patch) > 0 {
					t.Errorf("patch = %s, want none", response.Patch)
				}
			}
			if tt.request.object != "" {
				assertJSONEqual(t, applyPatch(t, response, tt.request.object), want)
			}

			if len(response.Warnings) != len(tt.wantWarnings) {
				t.Fatalf("warnings = %q, want %d", response.Warnings, len(tt.wantWarnings))
			}
			for i, warning := range tt.wantWarnings {
				if !strings.Contains(response.Warnings[i], warning) {
					t.Errorf("warning %d = %q, want it to contain %q", i, response.Warnings[i], warning)
				}
			}
		})
	}
}

func TestHandlerDryRun(t *testing.T) {
	handler := NewHTTPHandler(newTestHandler(t, routing.DefaultHostTemplate))
	request := deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {"a/b": "c"}`))

	_, real := serve(t, handler, request.body())
	request.dryRun = true
	_, dryRun := serve(t, handler, request.body())

	if len(real.Response.Patch) == 0 {
		t.Fatal("real request got no patch")
	}
	if string(dryRun.Response.Patch) != string(real.Response.Patch) {
		t.Errorf("dry-run patch = %s, want %s", dryRun.Response.Patch, real.Response.Patch)
	}
	if dryRun.Response.Allowed != real.Response.Allowed {
		t.Errorf("dry-run allowed = %v, want %v", dryRun.Response.Allowed, real.Response.Allowed)
	}
	if dryRun.Response.Result.Message != real.Response.Result.Message {
		t.Errorf("dry-run message = %q, want %q", dryRun.Response.Result.Message, real.Response.Result.Message)
	}
}

func TestHandlerNamespaceTemplate(t *testing.T) {
	handler := NewHTTPHandler(newTestHandler(t, "{name}-{namespace}"))

	tests := []struct {
		name      string
		namespace string
		object    string
		want      string
	}{
		{name: "namespace from request", namespace: "team", object: deployment(`"name": "ws1"`), want: "ws1-team.ws.example.test"},
		{name: "namespace from object", namespace: "", object: deployment(`"name": "ws1", "namespace": "other"`), want: "ws1-other.ws.example.test"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			request := deploymentReview("CREATE", "ws1", tt.object)
			request.namespace = tt.namespace

			_, review := serve(t, handler, request.body())
			patched := applyPatch(t, review.Response, tt.object)

			meta, err := decodeMetadata([]byte(patched))
			if err != nil {
				t.Fatal(err)
			}
			if got := meta.Annotations[routing.AnnotationRouteURL]; got != tt.want {
				t.Errorf("annotation = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHandlerBadRequest(t *testing.T) {
	validObject := deployment(`"name": "ws1"`)
	replace := func(old, new string) string {
		return strings.Replace(deploymentReview("CREATE", "ws1", validObject).body(), old, new, 1)
	}

	tests := []struct {
		name        string
		body        string
		contentType string
		wantCode    int32
		wantMessage string
	}{
		{name: "malformed JSON", body: `{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {`, wantCode: 400, wantMessage: "decoding the AdmissionReview"},
		{name: "not an object", body: `[1, 2]`, wantCode: 400, wantMessage: "decoding the AdmissionReview"},
		{name: "null", body: `null`, wantCode: 400, wantMessage: "unsupported review"},
		{name: "v1beta1 review", body: replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1"), wantCode: 400, wantMessage: `unsupported review apiVersion "admission.k8s.io/v1beta1" kind "AdmissionReview": expected admission.k8s.io/v1 AdmissionReview`},
		{name: "other kind", body: replace(`"kind": "AdmissionReview"`, `"kind": "Pod"`), wantCode: 400, wantMessage: `kind "Pod"`},
		{name: "no apiVersion", body: replace(`"apiVersion": "admission.k8s.io/v1",`, ""), wantCode: 400, wantMessage: `unsupported review apiVersion ""`},
		{name: "no request", body: `{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}`, wantCode: 400, wantMessage: "the AdmissionReview has no request"},
		{name: "null request", body: `{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": null}`, wantCode: 400, wantMessage: "has no request"},
		{name: "no object", body: deploymentReview("CREATE", "ws1", "").body(), wantCode: 400, wantMessage: MessageEmptyObject},
		{name: "object not JSON object", body: deploymentReview("CREATE", "ws1", `"text"`).body(), wantCode: 400, wantMessage: "decoding Deployment team/ws1"},
		{name: "object without metadata", body: deploymentReview("CREATE", "ws1", `{"kind": "Deployment"}`).body(), wantCode: 400, wantMessage: "the object has no metadata"},
		{name: "annotation not string", body: deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {"a": 1}`)).body(), wantCode: 400, wantMessage: "decoding Deployment team/ws1"},
		{name: "empty body", body: "", wantCode: 400, wantMessage: "request body is empty"},
		{name: "wrong content type", body: deploymentReview("CREATE", "ws1", validObject).body(), contentType: "text/plain", wantCode: 400, wantMessage: "expected application/json"},
	}

	handler := NewHTTPHandler(newTestHandler(t, routing.DefaultHostTemplate))

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			request := httpRequest(tt.body, tt.contentType)
			code, review := serveRequest(t, handler, request)
			response := review.Response

			if code != http.StatusOK {
				t.Errorf("HTTP status = %d, want 200 with the error in the review", code)
			}
			if response.Allowed {
				t.Error("allowed = true, want false")
			}
			if len(response.Patch) > 0 {
				t.Errorf("patch = %s, want none", response.Patch)
			}
			if response.Result == nil {
				t.Fatal("result is missing")
			}
			if response.Result.Code != tt.wantCode {
				t.Errorf("code = %d, want %d", response.Result.Code, tt.wantCode)
			}
			if !strings.Contains(response.Result.Message, tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", response.Result.Message, tt.wantMessage)
			}
		})
	}
}

func TestHandlerOversizeBody(t *testing.T) {
	handler := NewHTTPHandler(newTestHandler(t, routing.DefaultHostTemplate))
	request := deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {"padding": "PAD"}`))
	body := request.body()
	body = strings.Replace(body, "PAD", strings.Repeat("x", maxRequestBytes-len(body)+4), 1)

	if len(body) != maxRequestBytes+1 {
		t.Fatalf("test body has %d bytes, want %d", len(body), maxRequestBytes+1)
	}

	code, review := serve(t, handler, body)
	response := review.Response

	if code != http.StatusOK {
		t.Errorf("HTTP status = %d, want 200 with the error in the review", code)
	}
	if response.Allowed {
		t.Error("allowed = true, want false")
	}
	if response.Result == nil || response.Result.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("result = %+v, want code 413", response.Result)
	}
	if !strings.Contains(response.Result.Message, "larger than the maximum of 7340031 bytes") {
		t.Errorf("message = %q, want it to name the limit", response.Result.Message)
	}
}

func TestHandlerBodyAtLimit(t *testing.T) {
	handler := NewHTTPHandler(newTestHandler(t, routing.DefaultHostTemplate))
	request := deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {"padding": "PAD"}`))
	body := request.body()
	body = strings.Replace(body, "PAD", strings.Repeat("x", maxRequestBytes-len(body)+3), 1)

	if len(body) != maxRequestBytes {
		t.Fatalf("test body has %d bytes, want %d", len(body), maxRequestBytes)
	}

	_, review := serve(t, handler, body)

	if !review.Response.Allowed {
		t.Errorf("body of exactly the limit rejected: %+v", review.Response.Result)
	}
	if len(review.Response.Patch) == 0 {
		t.Error("body of exactly the limit got no patch")
	}
}

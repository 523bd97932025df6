package webhook

import (
	"encoding/json"
	"net/http"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"

	k8sjson "sigs.k8s.io/json"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

func FuzzAdmissionDecode(f *testing.F) {
	for _, seed := range []string{
		deploymentReview("CREATE", "ws1", deployment(`"name": "ws1"`)).body(),
		deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {"a/b": "c", "~": "d"}`)).body(),
		deploymentReview("CREATE", "ws1", deployment(`"name": "ws1", "annotations": {`+keyRoute+`: "victim.ws.example.test"}`)).body(),
		deploymentReview("UPDATE", "ws1", deployment(`"name": "ws1", "annotations": null`)).body(),
		deploymentReview("CREATE", "", deployment(`"generateName": "ws-", "annotations": {`+keyRoute+`: "x"}`)).body(),
		deploymentReview("CREATE", "a.b", deployment(`"name": "a.b"`)).body(),
		deploymentReview("CREATE", "ws1", `{"metadata": {"name": "ws1", "annotations": {"a": 1}}}`).body(),
		deploymentReview("CREATE", "ws1", `{"metadata": []}`).body(),
		deploymentReview("DELETE", "ws1", "").body(),
		`{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}`,
		`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"object": 5}}`,
		`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}`,
		`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "operation": "CREATE", "object": {"metadata": {}}}}`,
		`{`,
		`null`,
		``,
	} {
		f.Add(seed)
	}

	namer, err := routing.NewNamer(testBaseDomain, routing.DefaultHostTemplate)
	if err != nil {
		f.Fatal(err)
	}
	handler := NewHTTPHandler(NewHandler(namer, nil))

	f.Fuzz(func(t *testing.T, body string) {
		code, review := serve(t, handler, body)
		response := review.Response

		if code != http.StatusOK {
			t.Fatalf("HTTP status = %d, want 200", code)
		}
		if response.Result != nil && response.Result.Code == http.StatusInternalServerError {
			t.Fatalf("internal error for body %q: %s", body, response.Result.Message)
		}
		if !response.Allowed && len(response.Patch) > 0 {
			t.Errorf("denied response carries a patch %s", response.Patch)
		}
		if len(response.Patch) == 0 {
			return
		}

		// a patch only comes for a decodable request with an object; decode
		// it case-sensitively, as controller-runtime does
		var request struct {
			Request admissionv1.AdmissionRequest `json:"request"`
		}
		if err := k8sjson.UnmarshalCaseSensitivePreserveInts([]byte(body), &request); err != nil {
			t.Fatalf("patch %s for an undecodable body: %v", response.Patch, err)
		}
		object := string(request.Request.Object.Raw)
		patched := applyPatch(t, response, object)

		assertOnlyRouteChanged(t, object, patched, namer, request.Request)
	})
}

// assertOnlyRouteChanged fails the test unless patched equals object apart
// from the route URL annotation, which must be absent or the host that
// namer builds for the object, named as the handler names it.
func assertOnlyRouteChanged(t *testing.T, object, patched string, namer *routing.Namer, request admissionv1.AdmissionRequest) {
	t.Helper()

	meta, err := decodeMetadata([]byte(patched))
	if err != nil {
		t.Fatalf("decoding patched object %s: %v", patched, err)
	}

	name, namespace := meta.Name, request.Namespace
	if name == "" {
		name = request.Name
	}
	if namespace == "" {
		namespace = meta.Namespace
	}

	if value, found := meta.Annotations[routing.AnnotationRouteURL]; found {
		host, err := namer.Host(namespace, name)
		if err != nil || value != host {
			t.Errorf("annotation = %q, want host %q (error %v)", value, host, err)
		}
	}

	if !jsonpatch.Equal(withoutRoute(t, object), withoutRoute(t, patched)) {
		t.Errorf("patch changed more than the route annotation:\nbefore %s\nafter  %s", object, patched)
	}
}

// withoutRoute returns object with the route URL annotation removed and an
// empty or null annotations map dropped, so that two objects compare equal
// when they differ only there.
func withoutRoute(t *testing.T, object string) []byte {
	t.Helper()

	var doc map[string]any
	if err := json.Unmarshal([]byte(object), &doc); err != nil {
		t.Fatalf("decoding %s: %v", object, err)
	}

	metadata, _ := doc["metadata"].(map[string]any)
	if annotations, ok := metadata["annotations"].(map[string]any); ok {
		delete(annotations, routing.AnnotationRouteURL)
	}
	if annotations, ok := metadata["annotations"].(map[string]any); metadata != nil && (metadata["annotations"] == nil || ok && len(annotations) == 0) {
		delete(metadata, "annotations")
	}

	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

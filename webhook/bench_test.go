package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/caddy-k8s-router/caddy-k8s-router/routing"
)

// BenchmarkAdmission measures one admission request: "http" through the
// HTTP handler with JSON decoding and encoding, "handle" the Handler alone
// on a decoded request.
func BenchmarkAdmission(b *testing.B) {
	cases := []struct {
		name   string
		object string
	}{
		{name: "create", object: deployment(`"name": "ws1", "namespace": "team", "labels": {"app": "ws"}, "annotations": {"example.test/owner": "alice"}`)},
		{name: "up-to-date", object: deployment(`"name": "ws1", "namespace": "team", "annotations": {` + keyRoute + `: "` + hostWS1 + `"}`)},
	}

	namer, err := routing.NewNamer(testBaseDomain, routing.DefaultHostTemplate)
	if err != nil {
		b.Fatal(err)
	}
	handler := NewHandler(namer, nil)
	httpHandler := NewHTTPHandler(handler)

	for _, bc := range cases {
		body := deploymentReview("CREATE", "ws1", bc.object).body()

		b.Run("http/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()

			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				httpHandler.ServeHTTP(rec, req)

				if rec.Code != http.StatusOK {
					b.Fatalf("HTTP status = %d", rec.Code)
				}
			}
		})

		var review admissionv1.AdmissionReview
		if err := json.Unmarshal([]byte(body), &review); err != nil {
			b.Fatal(err)
		}
		request := admission.Request{AdmissionRequest: *review.Request}

		b.Run("handle/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()

			for b.Loop() {
				response := handler.Handle(context.Background(), request)
				if !response.Allowed {
					b.Fatalf("denied: %+v", response.Result)
				}
			}
		})
	}
}

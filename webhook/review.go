package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	k8sjson "sigs.k8s.io/json"
)

// maxRequestBytes is the largest request body accepted. controller-runtime
// v0.25.3 reads at most 7 MiB, which admission/http.go (maxRequestSize)
// derives from two objects of up to 3 MiB each plus 1 MiB for the rest of
// the review. It rejects a body that fills that limit, so the largest body
// it accepts is one byte less.
const maxRequestBytes = 7*1024*1024 - 1

// reviewGuard rejects request bodies that are too large or that are not an
// admission.k8s.io/v1 AdmissionReview with a request, before next decodes
// them. controller-runtime alone would accept any apiVersion and kind and
// echo them in its response.
type reviewGuard struct {
	next   http.Handler
	logger *slog.Logger
}

// reviewHeader is the part of an AdmissionReview that reviewGuard checks.
type reviewHeader struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Request    json.RawMessage `json:"request"`
}

// ServeHTTP checks the body and passes it on to the admission webhook.
func (g *reviewGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		g.next.ServeHTTP(w, r)
		return
	}

	// read at most one byte past the limit to tell a full body from a cut one
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	_ = r.Body.Close()
	if err != nil {
		g.reject(w, http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err))
		return
	}

	if len(body) > maxRequestBytes {
		g.reject(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than the maximum of %d bytes", maxRequestBytes))
		return
	}

	if len(body) == 0 {
		g.reject(w, http.StatusBadRequest, errors.New("request body is empty"))
		return
	}

	// check the review's type before the webhook decodes it
	if err := checkReviewHeader(body); err != nil {
		g.reject(w, http.StatusBadRequest, err)
		return
	}

	r.Body = io.NopCloser(bytes.NewReader(body))
	g.next.ServeHTTP(w, r)
}

// checkReviewHeader returns an error unless body is a JSON
// admission.k8s.io/v1 AdmissionReview with a request.
func checkReviewHeader(body []byte) error {
	var header reviewHeader
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(body, &header); err != nil {
		return fmt.Errorf("decoding the AdmissionReview: %w", err)
	}

	wantVersion := admissionv1.SchemeGroupVersion.String()
	if header.APIVersion != wantVersion || header.Kind != "AdmissionReview" {
		return fmt.Errorf("unsupported review apiVersion %q kind %q: expected %s AdmissionReview; list only %q in admissionReviewVersions of the webhook configuration",
			header.APIVersion, header.Kind, wantVersion, admissionv1.SchemeGroupVersion.Version)
	}

	if len(header.Request) == 0 || bytes.Equal(header.Request, []byte("null")) {
		return errors.New("the AdmissionReview has no request")
	}

	return nil
}

// reject logs err and writes it as an admission.k8s.io/v1 error response.
func (g *reviewGuard) reject(w http.ResponseWriter, code int32, err error) {
	g.logger.Warn("Rejected admission request", logKeyErr, err)

	response := admission.Errored(code, err)
	review := admissionv1.AdmissionReview{Response: &response.AdmissionResponse}
	review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))

	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(review); err != nil {
		g.logger.Warn("Failed to write admission response", logKeyErr, err)
	}
}

package webhook

import (
	"fmt"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	k8sjson "sigs.k8s.io/json"
)

// annotationsPath is the JSON pointer to the annotations map. Every patch
// the handler returns touches this path or a member of it, nothing else.
const annotationsPath = "/metadata/annotations"

// objectMetadata is the part of an object's metadata that the handler reads.
// Decoding into it instead of a full Deployment keeps fields unknown to this
// build out of the picture, since the patch never re-encodes the object.
type objectMetadata struct {
	Name         string `json:"name"`
	GenerateName string `json:"generateName"`
	Namespace    string `json:"namespace"`

	// Annotations is nil when the object has no annotations member or
	// when it is null, and non-nil (maybe empty) when it is a JSON object.
	Annotations map[string]string `json:"annotations"`
}

// decodeMetadata decodes the metadata of a raw JSON object. Keys match case
// sensitively, as in the API server, so that "Name" is not read as "name".
func decodeMetadata(raw []byte) (*objectMetadata, error) {
	var object struct {
		Metadata *objectMetadata `json:"metadata"`
	}

	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(raw, &object); err != nil {
		return nil, err
	}

	if object.Metadata == nil {
		return nil, fmt.Errorf("the object has no metadata")
	}

	return object.Metadata, nil
}

// setAnnotation returns the JSON patch operation that sets key to value in
// annotations. It adds the whole map when annotations is nil, and otherwise
// adds or replaces the one member, leaving the others untouched.
func setAnnotation(annotations map[string]string, key, value string) jsonpatch.Operation {
	if annotations == nil {
		return jsonpatch.NewOperation("add", annotationsPath, map[string]string{key: value})
	}

	if _, found := annotations[key]; found {
		return jsonpatch.NewOperation("replace", annotationPath(key), value)
	}

	return jsonpatch.NewOperation("add", annotationPath(key), value)
}

// removeAnnotation returns the JSON patch operation that removes key from
// the annotations map. The key must be present, or the patch fails to apply.
func removeAnnotation(key string) jsonpatch.Operation {
	return jsonpatch.NewOperation("remove", annotationPath(key), nil)
}

// annotationPath returns the JSON pointer to the annotation key, escaped as
// RFC 6901 section 4 requires: '~' becomes "~0" and '/' becomes "~1".
func annotationPath(key string) string {
	return annotationsPath + "/" + pointerEscaper.Replace(key)
}

// pointerEscaper escapes one JSON pointer reference token. A Replacer makes
// a single pass, so the "~1" written for '/' is not escaped again.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

package webhook

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

func TestAnnotationPath(t *testing.T) {
	tests := []struct {
		key  string
		want string
	}{
		{key: "plain", want: "/metadata/annotations/plain"},
		{key: "example.test/owner", want: "/metadata/annotations/example.test~1owner"},
		{key: "a~b", want: "/metadata/annotations/a~0b"},
		{key: "~1", want: "/metadata/annotations/~01"},
		{key: "/~", want: "/metadata/annotations/~1~0"},
		{key: "", want: "/metadata/annotations/"},
	}

	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := annotationPath(tt.key); got != tt.want {
				t.Errorf("annotationPath(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestSetAnnotation(t *testing.T) {
	tests := []struct {
		name   string
		object string
		key    string
		want   string
	}{
		{
			name:   "no map",
			object: `{"metadata": {"name": "ws1"}}`,
			key:    "a/b~c",
			want:   `{"metadata": {"name": "ws1", "annotations": {"a/b~c": "v"}}}`,
		},
		{
			name:   "new key with slash and tilde",
			object: `{"metadata": {"annotations": {"a": "1", "a~1b": "2"}}}`,
			key:    "a/b~c",
			want:   `{"metadata": {"annotations": {"a": "1", "a~1b": "2", "a/b~c": "v"}}}`,
		},
		{
			name:   "existing key with slash and tilde",
			object: `{"metadata": {"annotations": {"a/b~c": "old", "a~1b~0c": "keep"}}}`,
			key:    "a/b~c",
			want:   `{"metadata": {"annotations": {"a/b~c": "v", "a~1b~0c": "keep"}}}`,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta, err := decodeMetadata([]byte(tt.object))
			if err != nil {
				t.Fatal(err)
			}

			got := applyOperations(t, tt.object, setAnnotation(meta.Annotations, tt.key, "v"))

			if !jsonpatch.Equal([]byte(got), []byte(tt.want)) {
				t.Errorf("object after patch = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRemoveAnnotation(t *testing.T) {
	object := `{"metadata": {"annotations": {"a/b~c": "gone", "a~1b~0c": "keep"}}}`

	got := applyOperations(t, object, removeAnnotation("a/b~c"))

	want := `{"metadata": {"annotations": {"a~1b~0c": "keep"}}}`
	if !jsonpatch.Equal([]byte(got), []byte(want)) {
		t.Errorf("object after patch = %s, want %s", got, want)
	}
}

func TestDecodeMetadataCaseSensitive(t *testing.T) {
	meta, err := decodeMetadata([]byte(`{"metadata": {"Name": "upper", "name": "lower", "ANNOTATIONS": {"a": "b"}}}`))
	if err != nil {
		t.Fatal(err)
	}

	if meta.Name != "lower" {
		t.Errorf("name = %q, want %q", meta.Name, "lower")
	}
	if meta.Annotations != nil {
		t.Errorf("annotations = %v, want nil", meta.Annotations)
	}
}

// applyOperations encodes ops as a JSON patch and applies it to object.
func applyOperations(t *testing.T, object string, ops ...any) string {
	t.Helper()

	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}

	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatalf("decoding patch %s: %v", raw, err)
	}

	patched, err := patch.Apply([]byte(object))
	if err != nil {
		t.Fatalf("applying patch %s: %v", raw, err)
	}

	return string(patched)
}

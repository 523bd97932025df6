// Package manifests_test checks the install story: the kustomize base in
// manifests/, its cert-manager overlay, the certs/ overlay written by
// hack/certgen, and the Dockerfile. The static tests render the
// kustomizations with the test bed's kubectl; the API-server tests apply
// them to a real kube-apiserver.
package manifests_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// Names in manifests/base that the tests look up.
const (
	routerNamespace  = "caddy-router"
	watchedNamespace = "gitspaces"
	appName          = "caddy-router"
	webhookService   = "caddy-router-webhook"
	webhookSecret    = "caddy-router-webhook-tls"
	settingsMap      = "caddy-router-settings"
	caddyConfigMap   = "caddy-config"
	serviceAccount   = "system:serviceaccount:caddy-router:caddy-router"
)

// repoRoot returns the repository root or fails the test.
func repoRoot(t *testing.T) string {
	t.Helper()

	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool returns the path of a test-bed binary from KUBEBUILDER_ASSETS (kube
// tools) or bin/. Outside CI a missing binary skips the test, under CI it
// fails it.
func tool(t *testing.T, name string) string {
	t.Helper()

	dir := filepath.Join(repoRoot(t), "bin")
	if assets := os.Getenv("KUBEBUILDER_ASSETS"); assets != "" && name != "caddy" {
		dir = assets
	}
	if name == "caddy" && os.Getenv("CADDY_BIN") != "" {
		dir, name = filepath.Split(os.Getenv("CADDY_BIN"))
	}

	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		err = fmt.Errorf("%s at %s: %w", name, path, testbed.ErrMissingBinary)
		if testbed.SkipIfMissing(err) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return path
}

// run runs a command in dir and returns its stdout, failing the test with
// stderr when it exits non-zero.
func run(t *testing.T, dir string, name string, args ...string) []byte {
	t.Helper()

	out, stderr, err := runCommand(dir, nil, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr)
	}
	return out
}

// runCommand runs a command in dir with env added to the test's environment
// and stdin, and returns stdout and stderr.
func runCommand(dir string, env []string, stdin []byte, name string, args ...string) (stdout, stderr []byte, err error) {
	var outBuf, errBuf bytes.Buffer

	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}

	err = cmd.Run()
	return outBuf.Bytes(), errBuf.Bytes(), err
}

// render runs `kubectl kustomize dir` and returns the objects it prints.
func render(t *testing.T, dir string) objects {
	t.Helper()

	return decodeObjects(t, renderYAML(t, dir))
}

// renderYAML runs `kubectl kustomize dir` and returns its output.
func renderYAML(t *testing.T, dir string) []byte {
	t.Helper()

	return run(t, "", tool(t, "kubectl"), "kustomize", dir)
}

// objects is a rendered kustomization.
type objects []*unstructured.Unstructured

// decodeObjects splits a multi-document YAML stream into objects.
func decodeObjects(t *testing.T, data []byte) objects {
	t.Helper()

	var objs objects
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding rendered objects: %v", err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// find returns the object of the kind whose name is name or, for generated
// ConfigMaps and Secrets, starts with name and a dash. It fails the test
// when there is none.
func (objs objects) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()

	for _, obj := range objs {
		if obj.GetKind() != kind {
			continue
		}
		if obj.GetName() == name || (kind == "ConfigMap" || kind == "Secret") && strings.HasPrefix(obj.GetName(), name+"-") {
			return obj
		}
	}
	t.Fatalf("no %s %q in the rendered objects", kind, name)
	return nil
}

// of returns the objects of one kind.
func (objs objects) of(kind string) objects {
	var matched objects
	for _, obj := range objs {
		if obj.GetKind() == kind {
			matched = append(matched, obj)
		}
	}
	return matched
}

// toYAML encodes objs as one multi-document YAML stream, for kubectl.
func (objs objects) toYAML(t *testing.T) []byte {
	t.Helper()

	var buf bytes.Buffer
	for _, obj := range objs {
		data, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(data)
		buf.WriteString("\n")
	}
	return buf.Bytes()
}

// convert decodes an unstructured object into a typed one.
func convert[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()

	typed := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, typed, true); err != nil {
		t.Fatalf("%s %s has a field its type does not know: %v", obj.GetKind(), obj.GetName(), err)
	}
	return typed
}

// deployment returns the rendered router Deployment.
func (objs objects) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()

	return convert[appsv1.Deployment](t, objs.find(t, "Deployment", appName))
}

// container returns the container named name in pod, or fails the test.
func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()

	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q in the pod template", name)
	return corev1.Container{}
}

// copyTree copies the files below src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()

	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)

		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s to %s: %v", src, dst, err)
	}
}

// checkout returns a temporary copy of manifests/ and certs/kustomization.yaml
// laid out as in the repository, so tests can edit and render them and run
// certgen without touching the working tree.
func checkout(t *testing.T) string {
	t.Helper()

	root := repoRoot(t)
	dir := t.TempDir()

	copyTree(t, filepath.Join(root, "manifests"), filepath.Join(dir, "manifests"))

	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	kustomization, err := os.ReadFile(filepath.Join(root, "certs", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "certs", "kustomization.yaml"), kustomization, 0o644); err != nil {
		t.Fatal(err)
	}

	return dir
}

var (
	certgenOnce sync.Once
	certgenPath string
	certgenErr  error
)

// certgen runs hack/certgen with -out dir and the extra args, building it
// once per test binary into the shared work folder.
func certgen(t *testing.T, dir string, args ...string) {
	t.Helper()

	certgenOnce.Do(func() {
		certgenPath = filepath.Join(workDir, "certgen")
		_, stderr, err := runCommand(repoRoot(t), nil, nil, "go", "build", "-o", certgenPath, "./hack/certgen")
		if err != nil {
			certgenErr = fmt.Errorf("building hack/certgen: %w\n%s", err, stderr)
		}
	})
	if certgenErr != nil {
		t.Fatal(certgenErr)
	}

	run(t, "", certgenPath, append([]string{"-out", dir}, args...)...)
}

// editFile replaces old with new in path, failing the test when old is not
// found exactly once.
func editFile(t *testing.T, path, old, new string) {
	t.Helper()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), old); n != 1 {
		t.Fatalf("%s contains %q %d times, expected once", path, old, n)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

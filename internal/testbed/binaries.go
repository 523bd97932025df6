package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrMissingBinary is returned, wrapped, when a binary the test bed needs is
// not built. Tests may skip on it outside CI; `make tools` builds them.
var ErrMissingBinary = errors.New("test-bed binary not found; run `make tools`")

// RepoRoot returns the repository root: the nearest folder above the working
// directory that holds hack/build-tools.sh.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}

	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "build-tools.sh")); err == nil {
			return dir, nil
		}

		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the repository root: no hack/build-tools.sh above the working directory")
		}
		dir = parent
	}
}

// binary returns the path of a test-bed binary: from the folder named by
// envDir when that variable is set, else from bin/ at the repository root.
func binary(name, envDir string) (string, error) {
	dir := os.Getenv(envDir)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}

	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s at %s: %w", name, path, ErrMissingBinary)
	}

	return path, nil
}

// caddyBinary returns CADDY_BIN when set, else bin/caddy.
func caddyBinary() (string, error) {
	if path := os.Getenv("CADDY_BIN"); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("CADDY_BIN=%s: %w", path, ErrMissingBinary)
		}
		return path, nil
	}

	return binary("caddy", "")
}

// kubeBinary returns a control-plane binary from KUBEBUILDER_ASSETS when set,
// else from bin/.
func kubeBinary(name string) (string, error) {
	return binary(name, "KUBEBUILDER_ASSETS")
}

// SkipIfMissing reports whether a test should be skipped because err reports
// a missing binary. Under CI (the CI variable set) it never skips, so that a
// missing build step fails loudly instead of passing silently.
func SkipIfMissing(err error) bool {
	return errors.Is(err, ErrMissingBinary) && os.Getenv("CI") == ""
}

// Package bench holds the router's performance benchmarks. Each one runs the
// router binary against the test bed: a real kube-apiserver and etcd (and
// kube-controller-manager where the scenario needs it), a real Caddy, and a
// counting proxy in front of Caddy's admin API. A single iteration is a whole
// scenario, so run them with -benchtime=1x, as `make bench` does.
// docs/BENCHMARKS.md records the results.
package bench

import (
	"os"
	"sync"
	"testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
)

// baseDomain is the base domain every benchmark router serves.
const baseDomain = "bench.test"

var (
	// buildOnce builds the router binary on first use, so that `make test`,
	// which runs no benchmark, does not build it.
	buildOnce sync.Once
	// buildDir holds the router binary; TestMain removes it.
	buildDir string
	// routerPath is the built binary, or "" when the build failed.
	routerPath string
	// buildErr is the error of the build.
	buildErr error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// routerBinary builds cmd/router once per test binary and returns its path.
func routerBinary(tb testing.TB) string {
	tb.Helper()

	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "bench-router-")
		if buildErr != nil {
			return
		}

		routerPath, buildErr = e2eutil.BuildRouter(buildDir)
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}

	return routerPath
}

package manifests_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// The control plane, kubelet stand-in and router binary are shared by the
// API-server tests and started by the first test that needs them, so the
// static tests run without them.
var (
	bedOnce    sync.Once
	bed        *testBed
	bedErr     error
	workDir    string
	routerOnce sync.Once
	routerPath string
	routerErr  error
)

// testBed is the shared control plane and kubelet stand-in.
type testBed struct {
	cp      *testbed.ControlPlane
	kubelet *testbed.Kubelet
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "manifests-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	workDir = dir

	code := m.Run()

	if bed != nil {
		bed.kubelet.Stop()
		if err := bed.cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}
	return code
}

// controlPlane returns the shared test bed, starting it on first use: the
// API server, the controller manager, the namespaces of the base and a
// kubelet stand-in for the watched namespace. A missing binary skips the
// test outside CI and fails it under CI.
func controlPlane(t *testing.T) *testBed {
	t.Helper()

	bedOnce.Do(func() {
		ctx := context.Background()

		cp, err := testbed.StartControlPlane(ctx, testbed.ControlPlaneOptions{ControllerManager: true})
		if err != nil {
			bedErr = err
			return
		}

		// The watched namespace exists before the add-on is installed; the
		// router's own namespace comes from the manifests.
		if err := cp.CreateNamespace(ctx, watchedNamespace, nil); err != nil {
			bedErr = err
			_ = cp.Stop()
			return
		}

		kubelet, err := testbed.StartKubelet(ctx, cp.Clientset, testbed.KubeletOptions{Namespace: watchedNamespace})
		if err != nil {
			bedErr = err
			_ = cp.Stop()
			return
		}

		bed = &testBed{cp: cp, kubelet: kubelet}
	})

	if testbed.SkipIfMissing(bedErr) {
		t.Skip(bedErr)
	}
	if bedErr != nil {
		t.Fatal(bedErr)
	}
	return bed
}

// routerBinary builds the router once into the shared work folder, with the
// race detector when the tests run with it.
func routerBinary(t *testing.T) string {
	t.Helper()

	routerOnce.Do(func() {
		routerPath = filepath.Join(workDir, "router")
		args := []string{"build", "-o", routerPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/router")

		_, stderr, err := runCommand(repoRoot(t), nil, nil, "go", args...)
		if err != nil {
			routerErr = fmt.Errorf("building the router: %w\n%s", err, stderr)
		}
	})
	if routerErr != nil {
		t.Fatal(routerErr)
	}
	return routerPath
}

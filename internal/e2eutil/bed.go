package e2eutil

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/testbed"
)

// Bed is the set of test-bed parts that the end-to-end tests of one package
// share: a control plane with kube-controller-manager, a kubelet stand-in
// for every namespace, and a router binary built for the run.
type Bed struct {
	// ControlPlane is the shared control plane.
	ControlPlane *testbed.ControlPlane
	// Kubelet runs the pods of every namespace of ControlPlane.
	Kubelet *testbed.Kubelet
	// RouterBinary is the router built for this run.
	RouterBinary string
	// SkipReason is set when the test-bed binaries are missing outside CI.
	// Tests then skip with it, and ControlPlane and Kubelet are nil.
	SkipReason string
}

// RunMain builds the router, starts the shared control plane and kubelet
// stand-in into bed, runs m, and stops them again. It returns the exit code
// for os.Exit, and prints the cause to stderr when the set-up fails.
func RunMain(m *testing.M, bed *Bed) int {
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "e2e-router-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	if bed.RouterBinary, err = BuildRouter(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	bed.ControlPlane, err = testbed.StartControlPlane(ctx, testbed.ControlPlaneOptions{ControllerManager: true})
	if testbed.SkipIfMissing(err) {
		bed.SkipReason = err.Error()
		return m.Run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := bed.ControlPlane.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()

	bed.Kubelet, err = testbed.StartKubelet(ctx, bed.ControlPlane.Clientset, testbed.KubeletOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bed.Kubelet.Stop()

	return m.Run()
}

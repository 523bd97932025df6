package testbed

import (
	"errors"
	"syscall"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestKillAPIServerAndStart(t *testing.T) {
	cp := startControlPlane(t, ControlPlaneOptions{})
	ctx := t.Context()
	if err := cp.CreateNamespace(ctx, "before-kill", nil); err != nil {
		t.Fatal(err)
	}

	if err := cp.KillAPIServer(); err != nil {
		t.Fatal(err)
	}

	_, err := cp.Clientset.Discovery().ServerVersion()
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("request while killed: error = %v, want connection refused", err)
	}

	if err := cp.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}

	// the same client trusts the restarted server, which kept etcd's data
	if _, err := cp.Clientset.CoreV1().Namespaces().Get(ctx, "before-kill", metav1.GetOptions{}); err != nil {
		t.Errorf("getting the namespace created before the kill: %v", err)
	}
}

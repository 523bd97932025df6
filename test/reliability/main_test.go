// Package reliability proves that the router never removes the route of a
// live, Ready Deployment because of a fault or of bad input elsewhere, and
// that it recovers on its own. Each test runs the router binary against the
// test bed: a real kube-apiserver, etcd and kube-controller-manager, the
// kubelet stand-in and a real Caddy, all on loopback.
//
// Every test watches Caddy's routes with a routeGuard while it injects its
// fault, and measures the time from the end of the fault until every route
// is correct again. docs/RELIABILITY.md lists the faults, the bad input and
// the measured times.
package reliability

import (
	"os"
	"testing"

	"github.com/caddy-k8s-router/caddy-k8s-router/internal/e2eutil"
)

// bed is the control plane, kubelet stand-in and router binary that the
// tests share, except those that stop the API server.
var bed e2eutil.Bed

func TestMain(m *testing.M) {
	os.Exit(e2eutil.RunMain(m, &bed))
}

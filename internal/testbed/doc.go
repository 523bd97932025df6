// Package testbed runs the real components that the router's integration and
// end-to-end tests talk to, all on loopback, on free ports and in per-run
// temporary directories:
//
//   - a control plane: etcd and kube-apiserver started by controller-runtime's
//     envtest, plus kube-controller-manager running the Deployment,
//     ReplicaSet and garbage-collector controllers ([StartControlPlane]);
//   - a kubelet stand-in that binds pods to a fake Node, gives each pod its
//     own 127.x.y.z address with an HTTP backend on its container ports, and
//     marks it Ready ([StartKubelet]);
//   - a real Caddy with its admin API on loopback ([StartCaddy]).
//
// The binaries come from bin/ at the repository root, built by `make tools`.
// KUBEBUILDER_ASSETS names another folder holding kube-apiserver, etcd,
// kube-controller-manager and kubectl, and CADDY_BIN another caddy binary.
//
// Every process the package starts is recorded with a reaper: a small shell
// process that kills them all when the process that started them exits,
// also when a test binary panics, times out or is killed.
package testbed

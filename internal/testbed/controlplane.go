package testbed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controllers run by kube-controller-manager: what Deployments need to roll
// out pods, and the garbage collector so that deleting a Deployment deletes
// its ReplicaSets and pods.
const controllers = "deployment-controller,replicaset-controller,garbage-collector-controller"

// ControlPlaneOptions configures StartControlPlane.
type ControlPlaneOptions struct {
	// ControllerManager also starts kube-controller-manager, so that
	// Deployments create ReplicaSets and pods. Without it only the API server
	// and etcd run.
	ControllerManager bool
}

// ControlPlane is a running etcd, kube-apiserver and, optionally,
// kube-controller-manager.
type ControlPlane struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Clientset is built from Config.
	Clientset kubernetes.Interface
	// KubeconfigPath is a kubeconfig file for Config, for kubectl and for
	// the router binary.
	KubeconfigPath string
	// KubectlPath is the kubectl binary of the test bed.
	KubectlPath string

	env    *envtest.Environment
	dir    string
	kcm    *exec.Cmd
	kcmEnd chan struct{}
}

// StartControlPlane starts etcd and kube-apiserver through envtest, bound to
// 127.0.0.1 on free ports, and kube-controller-manager when asked. Stop it
// with Stop.
func StartControlPlane(ctx context.Context, opts ControlPlaneOptions) (*ControlPlane, error) {
	reaper, err := startReaper()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(reaper, "control-plane-")
	if err != nil {
		return nil, fmt.Errorf("creating control-plane folder: %w", err)
	}
	cp := &ControlPlane{dir: dir}

	// wrap the binaries so that the reaper records their pids
	wrapped := map[string]string{}
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		path, err := kubeBinary(name)
		if err != nil {
			return nil, err
		}
		if wrapped[name], err = trackingWrapper(dir, name, path); err != nil {
			return nil, err
		}
	}
	cp.KubectlPath = wrapped["kubectl"]

	// start etcd and the API server
	env := &envtest.Environment{
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{Path: wrapped["etcd"]}
	env.ControlPlane.KubectlPath = wrapped["kubectl"]
	apiServer := env.ControlPlane.GetAPIServer()
	apiServer.Path = wrapped["kube-apiserver"]
	// Keep the API server's advertised address on loopback; it needs the
	// endpoint reconciler off to accept that.
	apiServer.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")

	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	cp.env = env

	// an admin user, with a kubeconfig for kubectl and other processes
	admin, err := env.AddUser(envtest.User{Name: "testbed-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("adding the admin user: %w", err), cp.Stop())
	}
	cp.Config = admin.Config()
	cp.Config.QPS, cp.Config.Burst = 500, 1000
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("writing the admin kubeconfig: %w", err), cp.Stop())
	}
	cp.KubeconfigPath = filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(cp.KubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, errors.Join(fmt.Errorf("writing the admin kubeconfig: %w", err), cp.Stop())
	}
	if cp.Clientset, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return nil, errors.Join(err, cp.Stop())
	}

	if opts.ControllerManager {
		if err := cp.startControllerManager(ctx); err != nil {
			return nil, errors.Join(err, cp.Stop())
		}
	}

	return cp, nil
}

// startControllerManager runs kube-controller-manager with the Deployment,
// ReplicaSet and garbage-collector controllers and no serving port.
func (cp *ControlPlane) startControllerManager(ctx context.Context) error {
	path, err := kubeBinary("kube-controller-manager")
	if err != nil {
		return err
	}

	logFile, err := os.Create(filepath.Join(cp.dir, "kube-controller-manager.log"))
	if err != nil {
		return fmt.Errorf("creating kube-controller-manager log: %w", err)
	}
	defer logFile.Close()

	healthAddr, err := FreeLoopbackAddr()
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(healthAddr)

	cmd := exec.Command(path,
		"--kubeconfig="+cp.KubeconfigPath,
		"--controllers="+controllers,
		"--leader-elect=false",
		"--bind-address="+host,
		"--secure-port="+port,
		// /healthz is always allowed; skipping the lookup of the
		// authentication ConfigMap keeps start-up free of warnings.
		"--authentication-skip-lookup=true",
		"--use-service-account-credentials=false",
		// Sync faster than the defaults: tests wait on these.
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--v=1",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	if err := trackPID(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	cp.kcm = cmd
	cp.kcmEnd = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(cp.kcmEnd)
	}()

	// wait for its /healthz; its serving certificate is self-signed
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // Self-signed certificate of a loopback test process.
	}
	url := "https://" + healthAddr + "/healthz"
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-cp.kcmEnd:
			return false, fmt.Errorf("kube-controller-manager exited during start-up; see %s", logFile.Name())
		default:
		}

		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()

		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-controller-manager at %s: %w", url, err)
	}

	return nil
}

// CreateNamespace creates a namespace with the given labels. An existing
// namespace is not an error.
func (cp *ControlPlane) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	_, err := cp.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}

	return nil
}

// AddUser adds a user authenticated by a client certificate, in the given
// groups, and returns the path of a kubeconfig file for it. The user has no
// rights beyond what RBAC objects grant it or its groups.
func (cp *ControlPlane) AddUser(name string, groups []string) (string, error) {
	user, err := cp.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", name, err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("writing the kubeconfig of user %s: %w", name, err)
	}

	path := filepath.Join(cp.dir, name+".kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return "", fmt.Errorf("writing the kubeconfig of user %s: %w", name, err)
	}

	return path, nil
}

// StartAPIServer starts kube-apiserver again on the same port, certificates
// and etcd after KillAPIServer, and waits until it is healthy.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	if err := cp.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("restarting kube-apiserver: %w", err)
	}

	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cp.Clientset.Discovery().ServerVersion()
		return err == nil, nil
	})
}

// Stop stops kube-controller-manager, kube-apiserver and etcd, and removes
// their folders. Stop informers and webhook servers that use the API server
// first, or the API server waits for them before it exits.
func (cp *ControlPlane) Stop() error {
	var errs []error
	if cp.kcm != nil {
		_ = cp.kcm.Process.Signal(syscall.SIGTERM)
		select {
		case <-cp.kcmEnd:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cp.kcm.Process.Pid, syscall.SIGKILL)
			<-cp.kcmEnd
		}
	}

	if cp.env != nil {
		if err := cp.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping etcd and kube-apiserver: %w", err))
		}
	}

	if err := os.RemoveAll(cp.dir); err != nil {
		errs = append(errs, err)
	}

	return errors.Join(errs...)
}

package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Process is a program the test bed started, such as the router binary,
// with its output in a log file.
type Process struct {
	// LogPath is the file that receives the process's stdout and stderr.
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// StartProcess runs binary with args and extra environment variables in its
// own process group, tracked by the reaper, with output appended to a log
// file in a per-run folder.
func StartProcess(binary string, args, env []string) (*Process, error) {
	reaper, err := startReaper()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(reaper, filepath.Base(binary)+"-")
	if err != nil {
		return nil, err
	}

	p := &Process{LogPath: filepath.Join(dir, "output.log"), exited: make(chan struct{})}
	logFile, err := os.OpenFile(p.LogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	if err := trackPID(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()

	return p, nil
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} {
	return p.exited
}

// ExitCode returns the exit code once the process has exited, or -1.
func (p *Process) ExitCode() int {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Log returns the process's output so far.
func (p *Process) Log() string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}

	return string(data)
}

// Stop sends SIGTERM and waits up to timeout for the process to exit, then
// kills it. It returns an error if the process had to be killed.
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", p.cmd.Path, timeout)
	}
}

// Kill ends the process group with SIGKILL and waits for the exit.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// RegisterWebhook creates, or replaces, a MutatingWebhookConfiguration
// named name that sends CREATE and UPDATE of apps/v1 Deployments in the
// namespaces labelled namespaceLabel=true to url, trusting caPEM. It uses the
// settings the router's manifests use: failurePolicy Ignore, sideEffects
// None, a 5-second timeout and reinvocationPolicy IfNeeded.
func RegisterWebhook(ctx context.Context, client kubernetes.Interface, name, url string, caPEM []byte, namespaceLabel string) error {
	config := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "deployments.caddy-k8s-router.test",
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{"apps"},
					APIVersions: []string{"v1"},
					Resources:   []string{"deployments"},
					Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			FailurePolicy:      ptr.To(admissionregistrationv1.Ignore),
			SideEffects:        ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:     ptr.To[int32](5),
			ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			NamespaceSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{namespaceLabel: "true"}},
		}},
	}

	webhooks := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	err := webhooks.Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replacing webhook configuration %s: %w", name, err)
	}
	if _, err := webhooks.Create(ctx, config, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating webhook configuration %s: %w", name, err)
	}

	return nil
}

package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillAPIServer ends kube-apiserver with SIGKILL, as a crash would, and
// leaves etcd running: clients see their connections reset and their
// watches break. Start it again with StartAPIServer, which then serves the
// same certificates on the same port, so clients reconnect on their own.
//
// envtest v0.25.3 removes the certificate folder it created when it stops
// the API server, so a restarted server would serve a new CA that no client
// trusts. With watches open, kube-apiserver also takes longer than envtest's
// 20-second stop timeout to exit on SIGTERM. So KillAPIServer keeps a copy
// of the certificates for the restart and does not wait for a graceful exit.
func (cp *ControlPlane) KillAPIServer() error {
	api := cp.env.ControlPlane.APIServer

	// keep a copy of the certificates, which envtest removes on stop
	certs := filepath.Join(cp.dir, fmt.Sprintf("apiserver-certs-%d", time.Now().UnixNano()))
	if err := os.CopyFS(certs, os.DirFS(api.CertDir)); err != nil {
		return fmt.Errorf("copying the API server's certificates: %w", err)
	}

	// kill the process and wait until envtest has reaped it
	pid, err := findTrackedPID("--cert-dir=" + api.CertDir)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing kube-apiserver (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver (pid %d) still exists 10s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// let envtest clean up after the process, then point it at the copy.
	// Envtest may not have noticed the exit yet, so it may signal a process
	// that is gone, which is no failure here.
	err = api.Stop()
	if err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("clearing the stopped kube-apiserver: %w", err)
	}
	api.CertDir = certs

	return nil
}

// findTrackedPID returns the pid of the process the reaper tracks whose
// command line has the argument arg.
func findTrackedPID(arg string) (int, error) {
	dir, err := startReaper()
	if err != nil {
		return 0, err
	}

	pidsMu.Lock()
	data, err := os.ReadFile(filepath.Join(dir, "pids"))
	pidsMu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("reading the tracked pids: %w", err)
	}

	for _, line := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(line)
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(cmdline, []byte{0}) {
			if string(a) == arg {
				return pid, nil
			}
		}
	}

	return 0, errors.New("no running process with argument " + arg + " among the tracked pids")
}

package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// reaperScript waits for the process $1 to exit, then kills the process
// group of every pid listed in the file $2. Each child is started in its own
// process group (Setpgid), so its pgid equals its pid.
const reaperScript = `
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
if [ -f "$2" ]; then
  while read -r pid; do
    kill -KILL -- "-$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  done < "$2"
fi
rm -rf "$3"
`

var (
	reaperOnce sync.Once
	reaperErr  error
	reaperDir  string
	pidsMu     sync.Mutex
)

// startReaper starts, once per process, the shell process that cleans up
// after this one. It returns the folder where per-run state lives.
func startReaper() (string, error) {
	reaperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testbed-")
		if err != nil {
			reaperErr = fmt.Errorf("creating test-bed folder: %w", err)
			return
		}

		cmd := exec.Command("sh", "-c", reaperScript, "reaper",
			strconv.Itoa(os.Getpid()), filepath.Join(dir, "pids"), dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			reaperErr = fmt.Errorf("starting the test-bed reaper: %w", err)
			return
		}

		// The reaper outlives this process on purpose; release it so that
		// it is not waited for.
		_ = cmd.Process.Release()
		reaperDir = dir
	})

	return reaperDir, reaperErr
}

// trackPID records pid so that the reaper kills its process group if this
// process dies without stopping it.
func trackPID(pid int) error {
	dir, err := startReaper()
	if err != nil {
		return err
	}

	pidsMu.Lock()
	defer pidsMu.Unlock()

	f, err := os.OpenFile(filepath.Join(dir, "pids"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("recording pid %d: %w", pid, err)
	}
	_, werr := fmt.Fprintln(f, pid)

	return errors.Join(werr, f.Close())
}

// trackingWrapper writes an executable script into dir that records its own
// pid with the reaper and then execs binary, keeping that pid. envtest starts
// etcd and kube-apiserver itself, so the wrapper is how they get tracked.
func trackingWrapper(dir, name, binary string) (string, error) {
	reaper, err := startReaper()
	if err != nil {
		return "", err
	}

	path := filepath.Join(dir, name)
	script := fmt.Sprintf("#!/bin/sh\necho $$ >> %q\nexec %q \"$@\"\n", filepath.Join(reaper, "pids"), binary)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("writing wrapper for %s: %w", name, err)
	}

	return path, nil
}

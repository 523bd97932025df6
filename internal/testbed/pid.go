package testbed

// PID returns the process id of the started program, for reading its
// memory use from /proc/<pid>/status.
func (p *Process) PID() int {
	return p.cmd.Process.Pid
}

// PID returns the process id of Caddy, or 0 if it is not running. It
// changes when Restart starts a new process.
func (c *Caddy) PID() int {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}

	return c.cmd.Process.Pid
}

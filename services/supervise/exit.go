package supervise

import (
	"fmt"
	"io"
	"syscall"
)

// DontRestart is the exit code with which a service tells the supervisor not
// to restart it, e.g. because its name is unknown or its config cannot work.
const DontRestart = 125

// Exit is how a child process ended.
type Exit struct {
	// Code is the exit code, or -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process, or 0.
	Signal syscall.Signal
}

// String describes e like os.ProcessState does: "exit status 1" or
// "signal: killed".
func (e Exit) String() string {
	if e.Signal != 0 {
		return "signal: " + e.Signal.String()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Command is one child process to start.
type Command struct {
	// Path is the executable, e.g. /proc/self/exe.
	Path string
	// Args is the argument vector, including Args[0].
	Args []string
	// Env is the environment; nil means none.
	Env []string
	// Output receives the child's stdout and stderr.
	Output io.Writer
	// NewNetNS starts the child in a new, empty network namespace (root
	// only), so it can send nothing to any real network: the node's
	// --no-network mode. Path-based unix sockets still connect.
	NewNetNS bool
}

// Starter starts child processes and reports their ends. The real one
// (Reaper, Linux only) forks and owns wait4; tests use a fake.
type Starter interface {
	// Start starts cmd in a new process group whose id is the child's pid
	// and returns that pid. Unless Start fails, exited is called exactly
	// once, from another goroutine, after the child has ended and been
	// reaped.
	Start(cmd Command, exited func(Exit)) (pid int, err error)
	// Kill sends sig to the process group pid.
	Kill(pid int, sig syscall.Signal) error
}

package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drainWait bounds how long an exit report waits for the child's output
// pipe to drain (a grandchild may hold it open forever).
const drainWait = time.Second

// Reaper is the one owner of wait4(-1) in the process. It starts children
// (it is a Starter) and hands each reaped exit to the callback registered
// for that pid; exits of pids it did not start (orphans reparented to PID 1
// or to a subreaper) are reaped and logged. Nothing else in the process may
// wait for children: no exec.Cmd.Wait, no os.Process.Wait.
type Reaper struct {
	log *slog.Logger

	mu      sync.Mutex // held across fork and registration
	waiting map[int]func(Exit)
}

// NewReaper returns a reaper; call Run to make it reap.
func NewReaper(log *slog.Logger) *Reaper {
	if log == nil {
		log = slog.Default()
	}
	return &Reaper{log: log, waiting: map[int]func(Exit){}}
}

// SetSubreaper makes the calling process a child subreaper
// (PR_SET_CHILD_SUBREAPER), so orphaned descendants are reparented to it
// as they would be to PID 1, and the same reaping code runs. It returns a
// function that restores the previous setting.
func SetSubreaper() (restore func(), err error) {
	var old int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&old)), 0, 0, 0); err != nil {
		return nil, fmt.Errorf("reading the child subreaper flag: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("becoming a child subreaper: %w", err)
	}
	return func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, uintptr(old), 0, 0, 0) }, nil
}

// Run reaps children until ctx is done. Children that end before Run
// starts are reaped by its first sweep.
func (r *Reaper) Run(ctx context.Context) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	for {
		r.reapAll()
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		}
	}
}

// reapAll reaps every child that has ended.
func (r *Reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none ended
		}
		e := Exit{Code: ws.ExitStatus()}
		if ws.Signaled() {
			e = Exit{Code: -1, Signal: syscall.Signal(ws.Signal())}
		}
		r.mu.Lock()
		cb := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if cb == nil {
			r.log.Debug("reaped orphan", "pid", pid, "status", e.String())
			continue
		}
		cb(e)
	}
}

// Start forks and execs cmd in a new process group, with stdout and stderr
// on one pipe copied to cmd.Output. The child gets SIGKILL if the init
// dies (Pdeathsig), which matters in process mode.
func (r *Reaper) Start(cmd Command, exited func(Exit)) (int, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		pr.Close()
		pw.Close()
		return 0, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	attr := &syscall.ProcAttr{
		Env:   cmd.Env,
		Files: []uintptr{devnull.Fd(), pw.Fd(), pw.Fd()},
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if cmd.NewNetNS {
		attr.Sys.Cloneflags = syscall.CLONE_NEWNET
	}
	drained := make(chan struct{})
	r.mu.Lock()
	pid, err := syscall.ForkExec(cmd.Path, cmd.Args, attr)
	if err == nil {
		r.waiting[pid] = func(e Exit) {
			go func() {
				t := time.NewTimer(drainWait)
				select {
				case <-drained:
				case <-t.C:
				}
				t.Stop()
				exited(e)
			}()
		}
	}
	r.mu.Unlock()
	devnull.Close()
	pw.Close()
	if err != nil {
		pr.Close()
		return 0, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go func() {
		out := cmd.Output
		if out == nil {
			out = io.Discard
		}
		io.Copy(out, pr)
		pr.Close()
		close(drained)
	}()
	return pid, nil
}

// Kill sends sig to the process group pid.
func (r *Reaper) Kill(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("signalling process group %d: bad pid", pid)
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signalling process group %d with %v: %w", pid, sig, err)
	}
	return nil
}

package lab

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// startNode starts host's init in its namespace (under `ip netns exec`,
// in a UTS namespace of its own so it can set its hostname, in a session
// of its own so it outlives the lab command) with its console appended to
// its log, and records the process in the state.
func (s *State) startNode(host string) error {
	pn, ok := s.Plan.Node(host)
	if !ok {
		return fmt.Errorf("no node %q in the lab", host)
	}
	if p, ok := s.Procs[host]; ok && p.alive() {
		return fmt.Errorf("%s already runs (pid %d)", host, p.PID)
	}
	log, err := os.OpenFile(pn.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s's console log: %w", host, err)
	}
	defer log.Close()
	fmt.Fprintf(log, "--- lab: starting %s at %s\n", host, time.Now().Format(time.RFC3339Nano))
	args := []string{"netns", "exec", pn.NS, s.Init, "--state", pn.State, "--overlay", pn.Overlay}
	if pn.Card != "" {
		args = append(args, "--card", pn.Card)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = pn.Dir
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWUTS}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s's init: %w", host, err)
	}
	pid := cmd.Process.Pid
	start, err := procStart(pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("starting %s's init: reading its start time: %w", host, err)
	}
	s.Procs[host] = Proc{PID: pid, Start: start}
	// Reap it when it ends while this process still runs; after the lab
	// command exits, init (or the subreaper) does.
	go cmd.Wait()
	return s.Save()
}

// stopNode stops host's init: SIGTERM (a clean shutdown: the init stops
// its services, the VIP is handed over), then after grace everything left
// in its namespace is killed.
func (s *State) stopNode(host string, grace time.Duration) error {
	pn, ok := s.Plan.Node(host)
	if !ok {
		return fmt.Errorf("no node %q in the lab", host)
	}
	if p, ok := s.Procs[host]; ok && p.alive() {
		syscall.Kill(p.PID, syscall.SIGCONT)
		syscall.Kill(p.PID, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for p.alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	err := killAll(pn.NS, 0)
	delete(s.Procs, host)
	return firstErr(err, s.Save())
}

// crashNode kills every process of host at once, as a power cut does.
func (s *State) crashNode(host string) error {
	pn, ok := s.Plan.Node(host)
	if !ok {
		return fmt.Errorf("no node %q in the lab", host)
	}
	err := killAll(pn.NS, 0)
	delete(s.Procs, host)
	return firstErr(err, s.Save())
}

// nodeRunning reports whether host's init runs.
func (s *State) nodeRunning(host string) bool {
	p, ok := s.Procs[host]
	return ok && p.alive()
}

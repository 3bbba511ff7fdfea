package viplab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/vip"
)

// Spec is one VRRP router of a lab node, for ours and keepalived alike.
type Spec struct {
	Version  int
	VRID     int
	Priority int
	VIP      netip.Prefix
	Interval time.Duration
	// NoPreempt turns preemption off.
	NoPreempt bool
	// Peers are unicast peers; empty means multicast.
	Peers []netip.Addr
	// VirtualMAC puts the VIP on a macvlan vrrp.<VRID> with the VRRP
	// virtual MAC (keepalived's use_vmac).
	VirtualMAC bool
	// PreemptDelay holds off preemption after start.
	PreemptDelay time.Duration
}

// Proc is a running VRRP daemon.
type Proc interface {
	// Stop stops it gracefully and waits (bounded) for it to exit.
	Stop() error
	// Kill ends it with SIGKILL, as a crash would.
	Kill() error
	// Name says which implementation it is.
	Name() string
}

const (
	envNodeConfig = "PIIMG_VIP_LAB_CONFIG"
	envNodeNS     = "PIIMG_VIP_LAB_NS"
	envLauncherNS = "PIIMG_VIP_LAB_LAUNCHER_NS"
)

func nsID(st *syscall.Stat_t) string { return fmt.Sprintf("%d:%d", st.Dev, st.Ino) }

// launcherNS identifies the network namespace of this process.
func launcherNS() (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return "", fmt.Errorf("reading own network namespace: %w", err)
	}
	return nsID(&st), nil
}

// NodeMain runs this process as one of our VRRP nodes when a lab started it
// that way, and then exits; otherwise it returns at once. Call it first in
// TestMain or main.
func NodeMain() {
	path := os.Getenv(envNodeConfig)
	if path == "" {
		return
	}
	if err := runNode(path); err != nil {
		fmt.Fprintln(os.Stderr, "lab node:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// CheckInLab returns nil only when this process runs inside the lab
// namespace it was started in (by Reexec or StartOurs), never in the
// namespace of the process that started it.
func CheckInLab() error {
	ns := os.Getenv(envNodeNS)
	if !strings.HasPrefix(ns, "piimg-vip") {
		return fmt.Errorf("refusing to run outside a lab namespace (got %q)", ns)
	}
	var self, want syscall.Stat_t
	if err := errors.Join(syscall.Stat("/proc/self/ns/net", &self), syscall.Stat(filepath.Join("/run/netns", ns), &want)); err != nil {
		return fmt.Errorf("checking the network namespace: %w", err)
	}
	if self.Ino != want.Ino || self.Dev != want.Dev || nsID(&self) == os.Getenv(envLauncherNS) {
		return fmt.Errorf("refusing to run: not inside network namespace %s", ns)
	}
	return nil
}

// Reexec returns a command running this binary inside the node's namespace
// with env added; the child must call CheckInLab before using the network.
func (n *Node) Reexec(env []string, logw io.Writer, args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	host, err := launcherNS()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.NS, exe}, args...)...)
	cmd.Env = append(append(os.Environ(), env...), envNodeNS+"="+n.NS, envLauncherNS+"="+host)
	cmd.Stderr = logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// runNode runs the VIP service from the overlay at path inside the lab.
func runNode(path string) error {
	if err := CheckInLab(); err != nil {
		return err
	}
	node, err := overlays.Load(path)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	svc, err := vip.NewService(node, log, vip.Options{})
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			if err := svc.Handover(); err != nil {
				log.Warn("handover", "err", err)
			}
		}
	}()
	return svc.Run(ctx)
}

// Overlay returns a node overlay holding spec, for our service.
func (n *Node) Overlay(s Spec) string {
	role := overlays.RoleLBBackup
	if s.Priority > 100 {
		role = overlays.RoleLBMaster
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname: %s\nrole: %s\ninterfaces:\n  eth0: {address: %s}\n", strings.TrimPrefix(n.NS, n.lab.Prefix+"-"), role, n.Addr)
	fmt.Fprintf(&b, "balancer:\n  backends: [{name: web01, address: \"127.0.0.1:8080\"}]\n")
	fmt.Fprintf(&b, "vip:\n  router_id: %d\n  priority: %d\n  address: %s\n  version: %d\n  advert_interval: %s\n",
		s.VRID, s.Priority, s.VIP, s.Version, s.Interval)
	if s.NoPreempt {
		b.WriteString("  preempt: false\n")
	}
	if s.VirtualMAC {
		b.WriteString("  virtual_mac: true\n")
	}
	if s.PreemptDelay > 0 {
		fmt.Fprintf(&b, "  preempt_delay: %s\n", s.PreemptDelay)
	}
	if len(s.Peers) > 0 {
		fmt.Fprintf(&b, "  peers: [%s]\n", joinAddrs(s.Peers, ", "))
	}
	return b.String()
}

func joinAddrs(as []netip.Addr, sep string) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, sep)
}

// ours is our VIP service re-executed inside a node's namespace.
type ours struct {
	cmd  *exec.Cmd
	done chan error
}

// StartOurs runs our VIP service with spec inside the node, writing its
// overlay to dir and its log to logw.
func (n *Node) StartOurs(s Spec, dir string, logw io.Writer) (Proc, error) {
	path := filepath.Join(dir, filepath.Base(n.NS)+".yaml")
	if err := os.WriteFile(path, []byte(n.Overlay(s)), 0o644); err != nil {
		return nil, err
	}
	cmd, err := n.Reexec([]string{envNodeConfig + "=" + path}, logw)
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &ours{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

func (p *ours) Name() string { return "ours" }

func (p *ours) Stop() error { return stopPID(p.cmd.Process.Pid, p.done) }

func (p *ours) Kill() error {
	p.cmd.Process.Signal(syscall.SIGKILL)
	return waitDone(p.done, 5*time.Second)
}

// Handover asks the node for a planned handover.
func (p *ours) Handover() error { return p.cmd.Process.Signal(syscall.SIGUSR1) }

// Handoverer is a Proc that can hand its VIP over without stopping.
type Handoverer interface{ Handover() error }

func stopPID(pid int, done chan error) error {
	syscall.Kill(pid, syscall.SIGTERM)
	if err := waitDone(done, 15*time.Second); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		return err
	}
	return nil
}

func waitDone(done chan error, d time.Duration) error {
	select {
	case <-done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("process did not exit within %s", d)
	}
}

// keepalived is keepalived 2.2 running inside a node's namespace.
type keepalived struct {
	cmd     *exec.Cmd
	done    chan error
	vrrpPID string
}

// KeepalivedAvailable reports why keepalived cannot run, or nil.
func KeepalivedAvailable() error {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return errors.New("needs keepalived (Debian package keepalived)")
	}
	return nil
}

// KeepalivedConf returns a keepalived configuration holding spec.
func (n *Node) KeepalivedConf(s Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n  vrrp_version %d\n  enable_script_security\n}\n", filepath.Base(n.NS), s.Version)
	fmt.Fprintf(&b, "vrrp_instance VI_%d {\n  state BACKUP\n  interface eth0\n  virtual_router_id %d\n  priority %d\n", s.VRID, s.VRID, s.Priority)
	fmt.Fprintf(&b, "  advert_int %s\n", strconv.FormatFloat(s.Interval.Seconds(), 'f', -1, 64))
	if s.NoPreempt {
		b.WriteString("  nopreempt\n")
	}
	if s.VirtualMAC {
		b.WriteString("  use_vmac\n")
	}
	if s.PreemptDelay > 0 {
		fmt.Fprintf(&b, "  preempt_delay %s\n", strconv.FormatFloat(s.PreemptDelay.Seconds(), 'f', -1, 64))
	}
	if len(s.Peers) > 0 {
		fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }\n", n.Addr.Addr(), joinAddrs(s.Peers, "\n    "))
	}
	fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s dev eth0\n  }\n}\n", s.VIP)
	return b.String()
}

// StartKeepalived runs keepalived with spec inside the node; its
// configuration and pid files go to dir, its log to logw.
func (n *Node) StartKeepalived(s Spec, dir string, logw io.Writer) (Proc, error) {
	base := filepath.Join(dir, filepath.Base(n.NS))
	conf, pid := base+".keepalived.conf", base+".keepalived.pid"
	k := &keepalived{vrrpPID: base + ".vrrp.pid", done: make(chan error, 1)}
	if err := os.WriteFile(conf, []byte(n.KeepalivedConf(s)), 0o644); err != nil {
		return nil, err
	}
	os.Remove(pid)
	os.Remove(k.vrrpPID)
	k.cmd = exec.Command("ip", "netns", "exec", n.NS, "keepalived", "-n", "-l", "-D", "-G", "-P", "-R",
		"-f", conf, "-p", pid, "-r", k.vrrpPID)
	k.cmd.Stdout, k.cmd.Stderr = logw, logw
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { k.done <- k.cmd.Wait() }()
	// Wait for the VRRP child, so that Kill finds it.
	if !WaitFor(5*time.Second, func() bool { return k.childPID() > 0 }) {
		k.Kill()
		return nil, errors.New("keepalived's VRRP process did not start")
	}
	return k, nil
}

func (k *keepalived) Name() string { return "keepalived" }

func (k *keepalived) childPID() int {
	b, err := os.ReadFile(k.vrrpPID)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (k *keepalived) Stop() error { return stopPID(k.cmd.Process.Pid, k.done) }

// Kill stops the parent (so that it neither respawns nor signals its child),
// kills the VRRP child, then the parent: a crash leaving the VIP behind.
func (k *keepalived) Kill() error {
	parent := k.cmd.Process.Pid
	syscall.Kill(parent, syscall.SIGSTOP)
	if child := k.childPID(); child > 0 {
		syscall.Kill(child, syscall.SIGKILL)
	}
	syscall.Kill(parent, syscall.SIGKILL)
	return waitDone(k.done, 5*time.Second)
}

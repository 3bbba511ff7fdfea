package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// ip runs the ip tool with args, bounded to 10 s.
func ip(args ...string) error {
	_, err := ipOut(args...)
	return err
}

func ipOut(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("running ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// nsExists reports whether the named namespace exists.
func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// listNamespaces returns the named namespaces that start with prefix.
func listNamespaces(prefix string) []string {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// createNS makes a namespace with its loopback up.
func createNS(name string) error {
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	return ip("-n", name, "link", "set", "lo", "up")
}

// deleteNS removes a namespace; a missing one is not an error.
func deleteNS(name string) error {
	if !nsExists(name) {
		return nil
	}
	return ip("netns", "del", name)
}

// nsKey identifies a namespace by device and inode.
type nsKey struct{ dev, ino uint64 }

func statNS(path string) (nsKey, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsKey{}, err
	}
	return nsKey{uint64(st.Dev), st.Ino}, nil
}

// pidsIn returns every process whose network namespace is the named one,
// except this process.
func pidsIn(name string) ([]int, error) {
	want, err := statNS(filepath.Join(netnsDir, name))
	if err != nil {
		return nil, fmt.Errorf("finding the processes of %s: %w", name, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		k, err := statNS(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && k == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procStart returns a process's start time (field 22 of /proc/PID/stat).
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("no command in /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, errors.New("short /proc/PID/stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether p still runs (and is not a zombie).
func (p Proc) alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := procStart(p.PID)
	if err != nil || st != p.Start {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// signalAll sends sig to every process in the named namespace.
func signalAll(ns string, sig syscall.Signal) (int, error) {
	pids, err := pidsIn(ns)
	if err != nil {
		return 0, err
	}
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
	return len(pids), nil
}

// killAll ends every process in the named namespace: SIGCONT (a frozen
// process cannot act on SIGTERM), SIGTERM, up to grace for them to go,
// then SIGKILL, and waits (bounded) until none is left.
func killAll(ns string, grace time.Duration) error {
	if !nsExists(ns) {
		return nil
	}
	if grace > 0 {
		signalAll(ns, syscall.SIGCONT)
		signalAll(ns, syscall.SIGTERM)
		if waitEmpty(ns, grace) {
			return nil
		}
	}
	signalAll(ns, syscall.SIGKILL)
	if !waitEmpty(ns, 5*time.Second) {
		pids, _ := pidsIn(ns)
		return fmt.Errorf("processes %v in %s survive SIGKILL", pids, ns)
	}
	return nil
}

// waitEmpty waits up to d until no process (but zombies, which the
// kernel reaps with their parent) is left in ns.
func waitEmpty(ns string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		pids, err := pidsIn(ns)
		if err != nil {
			return true
		}
		live := 0
		for _, pid := range pids {
			if st, err := procStart(pid); err == nil && (Proc{PID: pid, Start: st}).alive() {
				live++
			}
		}
		if live == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nsHandle is an open handle of a named namespace.
type nsHandle struct {
	name string
	// mu guards h: Close must not close the descriptor (whose number the
	// kernel may give to another file) while a thread enters through it.
	mu     sync.RWMutex
	h      netns.NsHandle
	closed bool
}

func openNS(name string) (*nsHandle, error) {
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", name, err)
	}
	return &nsHandle{name: name, h: h}, nil
}

func (n *nsHandle) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	return n.h.Close()
}

// enter moves this thread into the namespace.
func (n *nsHandle) enter() error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return fmt.Errorf("entering namespace %s: the handle is closed", n.name)
	}
	return netns.Set(n.h)
}

// do runs fn on a locked OS thread inside the namespace. If the thread
// cannot return to its namespace it stays locked, so the runtime ends it
// with the goroutine instead of reusing it elsewhere.
func (n *nsHandle) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("reading this thread's namespace: %w", err)
	}
	defer orig.Close()
	if err := n.enter(); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("leaving namespace %s: %w", n.name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// DialContext opens a connection from inside the namespace.
func (n *nsHandle) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

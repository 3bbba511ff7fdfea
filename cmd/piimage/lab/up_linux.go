package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/balancer"
)

// Available says why a lab cannot run here, or nil when it can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root: it creates network namespaces, links and a bridge (run it with sudo)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the lab needs the ip tool (Debian package iproute2)")
	}
	return nil
}

// Up builds the lab and starts every node, then waits until every node
// answers /status and the VIP answers HTTP. On failure it removes what it
// made. The returned Lab is open: Close it.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	cfg.defaults()
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Init == "" {
		return nil, errors.New("lab up: no init binary")
	}
	dir := filepath.Join(cfg.RunDir, cfg.Name)
	if old, err := LoadState(dir); err == nil {
		for _, ns := range old.Namespaces {
			if nsExists(ns) {
				return nil, fmt.Errorf("lab %s is already up (namespace %s exists): run `piimage lab down` first", cfg.Name, ns)
			}
		}
	}
	if left := strayNamespaces(cfg.RunDir, cfg.Name, nil); len(left) > 0 {
		return nil, fmt.Errorf("namespaces of an earlier lab %s are left (%s): run `piimage lab down` first", cfg.Name, strings.Join(left, ", "))
	}
	plan, err := NewPlan(cfg.Name, dir, cfg.Nodes)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clearing the lab folder: %w", err)
	}
	st := &State{Plan: plan, Created: time.Now().UTC(), Init: filepath.Join(dir, "init"), Procs: map[string]Proc{}, StatsPassword: randomHex(12)}
	if err := st.Save(); err != nil {
		return nil, err
	}
	// A copy of its own: healing restarts nodes long after the caller's
	// binary may be gone.
	if err := copyFile(cfg.Init, st.Init, 0o755); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	fail := func(err error) (*Lab, error) {
		fmt.Fprintf(cfg.Log, "lab: %v; removing what was made\n", err)
		if derr := Down(cfg.RunDir, cfg.Name, cfg.Log); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	if err := st.writeNodeFiles(cfg.Nodes); err != nil {
		return fail(err)
	}
	if cfg.Cards != nil {
		if err := st.writeCards(cfg.Cards); err != nil {
			return fail(err)
		}
		fmt.Fprintf(cfg.Log, "lab: every node boots its role's image from a card folder (%s)\n", strings.Join(cfg.Cards.Images, ", "))
	}
	fmt.Fprintf(cfg.Log, "lab %s: %d nodes on %s (only inside the lab's namespaces), client %s\n", plan.Name, len(plan.Nodes), plan.Subnet, plan.Client.Addr())
	if err := st.buildNetwork(); err != nil {
		return fail(err)
	}
	for _, n := range plan.Nodes {
		if err := st.startNode(n.Host); err != nil {
			return fail(err)
		}
		fmt.Fprintf(cfg.Log, "lab: %s (%s) started in %s, %s\n", n.Host, n.Role, n.NS, n.Addr)
	}
	st.Up = true
	if err := st.Save(); err != nil {
		return fail(err)
	}
	l, err := open(st)
	if err != nil {
		return fail(err)
	}
	if err := l.WaitReady(ctx, cfg.Ready); err != nil {
		l.Close()
		return fail(err)
	}
	fmt.Fprintf(cfg.Log, "lab: every node answers; VIP %s answers\n", plan.VIP())
	return l, nil
}

// writeNodeFiles writes each node's folder: the overlay copy, the state
// folder, the web root, and the mirror's cluster secret.
func (s *State) writeNodeFiles(nodes []*overlays.Node) error {
	p := s.Plan
	hash, err := balancer.HashPassword(s.StatsPassword)
	if err != nil {
		return fmt.Errorf("hashing the stats password: %w", err)
	}
	settings := labSettings{MirrorSecret: filepath.Join(p.Dir, "mirror-secret"), StatsHash: hash}
	if err := os.WriteFile(settings.MirrorSecret, []byte(randomHex(32)+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the mirror secret: %w", err)
	}
	for _, n := range nodes {
		pn, _ := p.Node(n.Hostname)
		for _, d := range []string{pn.Dir, pn.State} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", d, err)
			}
		}
		if pn.WWW != "" {
			if err := os.MkdirAll(pn.WWW, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", pn.WWW, err)
			}
			if err := os.WriteFile(filepath.Join(pn.WWW, "index.html"), webIndex(pn.Host), 0o644); err != nil {
				return fmt.Errorf("writing %s's web root: %w", pn.Host, err)
			}
		}
		b, err := labOverlay(n, pn, p, settings)
		if err != nil {
			return err
		}
		if err := os.WriteFile(pn.Overlay, b, 0o644); err != nil {
			return fmt.Errorf("writing %s's overlay copy: %w", pn.Host, err)
		}
	}
	return nil
}

// buildNetwork makes the bridge namespace, the client namespace and one
// namespace per node, each recorded before it is made. Every command
// names its namespace: nothing is done in this process's own.
func (s *State) buildNetwork() error {
	p := s.Plan
	if err := s.addNamespace(p.BridgeNS); err != nil {
		return err
	}
	if err := createNS(p.BridgeNS); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", p.BridgeNS, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"-n", p.BridgeNS, "link", "set", "br0", "up"},
	}
	if err := ipSteps(steps); err != nil {
		return err
	}
	if err := s.addNamespace(p.ClientNS); err != nil {
		return err
	}
	if err := createNS(p.ClientNS); err != nil {
		return err
	}
	if err := ipSteps(plugSteps(p.BridgeNS, p.ClientNS, p.ClientPort)); err != nil {
		return err
	}
	steps = [][]string{{"-n", p.ClientNS, "addr", "add", p.Client.String(), "dev", "eth0"}}
	for _, a := range p.ClientPool {
		steps = append(steps, []string{"-n", p.ClientNS, "addr", "add", netip.PrefixFrom(a, p.Subnet.Bits()).String(), "dev", "eth0"})
	}
	steps = append(steps, []string{"-n", p.ClientNS, "link", "set", "eth0", "up"})
	if err := ipSteps(steps); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		if err := s.addNamespace(n.NS); err != nil {
			return err
		}
		if err := createNS(n.NS); err != nil {
			return err
		}
		// The node's eth0 stays down and without address: its init
		// configures it from the overlay, as on a card.
		if err := ipSteps(plugSteps(p.BridgeNS, n.NS, n.Port)); err != nil {
			return err
		}
	}
	return nil
}

// plugSteps returns the ip commands that give ns an eth0 whose other end,
// port, is on the bridge. The veth is created inside the bridge namespace
// and its peer moved straight into ns: this namespace never sees either.
func plugSteps(bridgeNS, ns, port string) [][]string {
	return [][]string{
		{"-n", bridgeNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", bridgeNS, "link", "set", port, "master", "br0", "up"},
	}
}

func ipSteps(steps [][]string) error {
	for _, args := range steps {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// strayNamespaces lists namespaces named like the lab's (name-...) that
// no other lab in runDir owns, besides those in known.
func strayNamespaces(runDir, name string, known []string) []string {
	owned := map[string]bool{}
	for _, k := range known {
		owned[k] = true
	}
	ents, _ := os.ReadDir(runDir)
	for _, e := range ents {
		if e.Name() == name || !e.IsDir() {
			continue
		}
		if other, err := LoadState(filepath.Join(runDir, e.Name())); err == nil {
			for _, ns := range other.Namespaces {
				owned[ns] = true
			}
		}
	}
	var out []string
	for _, ns := range listNamespaces(name + "-") {
		if !owned[ns] {
			out = append(out, ns)
		}
	}
	return out
}

// Down removes the lab name: every process in its namespaces (SIGTERM,
// then SIGKILL), every namespace with its links, and its folder. It works
// from the state file, so also after the lab crashed; without one it
// removes the namespaces named like the lab's that no other lab owns.
func Down(runDir, name string, log io.Writer) error {
	if runDir == "" {
		runDir = DefaultRunDir
	}
	if name == "" {
		name = DefaultName
	}
	if log == nil {
		log = io.Discard
	}
	if err := Available(); err != nil {
		return err
	}
	dir := filepath.Join(runDir, name)
	var nss []string
	st, err := LoadState(dir)
	if err == nil {
		nss = append(nss, st.Namespaces...)
	}
	for _, ns := range strayNamespaces(runDir, name, nss) {
		nss = append(nss, ns)
	}
	// Nodes and the client at once, the bridge last.
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, ns := range nss {
		if strings.HasSuffix(ns, "-br") {
			continue
		}
		wg.Go(func() {
			err := killAll(ns, 5*time.Second)
			if err == nil {
				err = deleteNS(ns)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, ns := range nss {
		if strings.HasSuffix(ns, "-br") {
			errs = append(errs, killAll(ns, time.Second), deleteNS(ns))
		}
	}
	if st != nil {
		for host, p := range st.Procs {
			if p.alive() {
				errs = append(errs, fmt.Errorf("%s's init (pid %d) still runs", host, p.PID))
			}
		}
	}
	var left []string
	for _, ns := range nss {
		if nsExists(ns) {
			left = append(left, ns)
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces left: %s", strings.Join(left, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("taking the lab %s down: %w", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the lab folder: %w", err)
	}
	fmt.Fprintf(log, "lab %s: down (%d namespaces removed)\n", name, len(nss))
	return nil
}

func copyFile(from, to string, perm os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("reading the init binary: %w", err)
	}
	if err := os.WriteFile(to, b, perm); err != nil {
		return fmt.Errorf("copying the init binary: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Lab is an open lab: its state and a way into its client namespace.
type Lab struct {
	State  *State
	client *nsHandle
	// HTTP reaches the nodes from the client namespace, without
	// keep-alives (every request a new connection, as from many clients).
	HTTP *http.Client
}

// Open opens the running lab name in runDir.
func Open(runDir, name string) (*Lab, error) {
	if runDir == "" {
		runDir = DefaultRunDir
	}
	if name == "" {
		name = DefaultName
	}
	if err := Available(); err != nil {
		return nil, err
	}
	st, err := LoadState(filepath.Join(runDir, name))
	if err != nil {
		return nil, err
	}
	if !nsExists(st.Plan.ClientNS) {
		return nil, fmt.Errorf("lab %s: its client namespace %s is gone: run `piimage lab down`, then up", name, st.Plan.ClientNS)
	}
	return open(st)
}

func open(st *State) (*Lab, error) {
	h, err := openNS(st.Plan.ClientNS)
	if err != nil {
		return nil, err
	}
	l := &Lab{State: st, client: h}
	l.HTTP = &http.Client{Timeout: 5 * time.Second, Transport: l.Transport()}
	return l, nil
}

// Transport returns an HTTP transport whose connections start in the
// client namespace.
func (l *Lab) Transport() *http.Transport {
	return &http.Transport{DialContext: l.client.DialContext, DisableKeepAlives: true}
}

// LoadTransport is Transport for load: each connection comes from the
// next address of the client's pool, as from many clients.
func (l *Lab) LoadTransport() *http.Transport {
	pool := l.State.Plan.ClientPool
	if len(pool) == 0 {
		return l.Transport()
	}
	var next atomic.Uint64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		src := pool[int(next.Add(1)%uint64(len(pool)))]
		var c net.Conn
		err := l.client.do(func() error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Transport{DialContext: dial, DisableKeepAlives: true}
}

// Close releases the client namespace handle; the lab keeps running.
func (l *Lab) Close() error { return l.client.Close() }

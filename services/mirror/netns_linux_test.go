package mirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lab is a bridge namespace and node namespaces plugged into it, with
// test-only 10.x addresses that exist only inside them.
type lab struct {
	t      *testing.T
	prefix string
	br     string
	nss    []string
	subnet string // first three octets
}

func newLab(t *testing.T) *lab {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip)")
	}
	var b [3]byte
	rand.Read(b[:])
	l := &lab{t: t, prefix: "piimg-mir" + hex.EncodeToString(b[:]), subnet: fmt.Sprintf("10.%d.%d", 100+b[0]%100, b[1])}
	l.br = l.prefix + "-br"
	t.Cleanup(l.close)
	l.ip("netns", "add", l.br)
	l.nss = append(l.nss, l.br)
	l.ip("-n", l.br, "link", "set", "lo", "up")
	l.ip("-n", l.br, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
	l.ip("-n", l.br, "link", "set", "br0", "up")
	return l
}

func (l *lab) ip(args ...string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// addNode makes namespace prefix-name with eth0 at .host of the subnet.
func (l *lab) addNode(name string, host int) (ns, addr string) {
	ns = l.prefix + "-" + name
	addr = fmt.Sprintf("%s.%d", l.subnet, host)
	l.ip("netns", "add", ns)
	l.nss = append(l.nss, ns)
	l.ip("-n", ns, "link", "set", "lo", "up")
	// Made in the bridge namespace, the peer moved straight into the
	// node's: the machine's own namespace never sees either end.
	l.ip("-n", l.br, "link", "add", "p-"+name, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("-n", l.br, "link", "set", "p-"+name, "master", "br0", "up")
	l.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	return ns, addr
}

func (l *lab) setLink(name, state string) { l.ip("-n", l.br, "link", "set", "p-"+name, state) }

func (l *lab) close() {
	for i := len(l.nss) - 1; i >= 0; i-- {
		exec.Command("ip", "netns", "del", l.nss[i]).Run()
	}
}

// proc is a mirror node: this test binary run inside a namespace.
type proc struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startProc(t *testing.T, ns string, c childNode) *proc {
	t.Helper()
	spec, _ := json.Marshal(c)
	p := &proc{cmd: exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")}
	p.cmd.Env = append(os.Environ(), nodeEnv+"="+string(spec))
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill ends the node at once (SIGKILL to the PID we started).
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// TestNetns runs a primary and two replicas in network namespaces:
// convergence, a replica killed in the middle of a transfer and
// restarted, and a link pulled and put back.
func TestNetns(t *testing.T) {
	l := newLab(t)
	nsP, addrP := l.addNode("p", 1)
	nsA, _ := l.addNode("a", 2)
	nsB, _ := l.addNode("b", 3)
	base := t.TempDir()
	prim, replA, replB := filepath.Join(base, "p"), filepath.Join(base, "a"), filepath.Join(base, "b")
	writeFile(t, filepath.Join(prim, "index.html"), []byte("<h1>cluster</h1>"), 0o644)
	writeFile(t, filepath.Join(prim, "media/big.bin"), pseudoRandom(3, 8<<20), 0o644)
	os.Symlink("index.html", filepath.Join(prim, "home.html"))

	hb, backoff := 300*time.Millisecond, 500*time.Millisecond
	startProc(t, nsP, childNode{Name: "web01", Root: prim, Listen: addrP + ":8873", Heartbeat: hb, MaxBackoff: backoff})
	replica := func(ns, name, root string) *proc {
		return startProc(t, ns, childNode{Name: name, Root: root, Primary: addrP + ":8873", Heartbeat: hb, MaxBackoff: backoff})
	}
	pa := replica(nsA, "web02", replA)
	replica(nsB, "web03", replB)
	same := func(what string, d time.Duration) {
		t.Helper()
		for _, r := range []string{replA, replB} {
			var diff string
			if !waitFor(d, func() bool { diff = treeDiff(prim, r, nil); return diff == "" }) {
				t.Fatalf("%s: %s differs:\n%s\nreplica a's log:\n%s", what, r, diff, pa.out.String())
			}
		}
	}
	same("first copy", 30*time.Second)

	writeFile(t, filepath.Join(prim, "news/today.html"), []byte("news"), 0o644)
	writeFile(t, filepath.Join(prim, "index.html"), []byte("<h1>cluster, changed</h1>"), 0o644)
	os.Rename(filepath.Join(prim, "media/big.bin"), filepath.Join(prim, "media/moved.bin"))
	os.Chmod(filepath.Join(prim, "news/today.html"), 0o600)
	same("changes", 15*time.Second)

	// Kill replica a while a large file is on its way.
	writeFile(t, filepath.Join(prim, "media/huge.bin"), pseudoRandom(4, 48<<20), 0o644)
	mid := waitFor(10*time.Second, func() bool {
		entries, _ := os.ReadDir(filepath.Join(replA, "media"))
		for _, e := range entries {
			if isOwnFile(e.Name()) {
				return true
			}
		}
		return false
	})
	pa.kill()
	t.Logf("replica a killed, in the middle of a transfer: %v", mid)
	pa = replica(nsA, "web02", replA)
	same("after the restart", 60*time.Second)

	// Pull replica b's cable while the primary changes.
	l.setLink("b", "down")
	writeFile(t, filepath.Join(prim, "offline.html"), []byte("made while b was cut off"), 0o644)
	os.Remove(filepath.Join(prim, "media/moved.bin"))
	time.Sleep(3 * hb)
	l.setLink("b", "up")
	same("after the link came back", 30*time.Second)
}

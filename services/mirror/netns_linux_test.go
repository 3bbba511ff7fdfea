package mirror

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/piimage/piimage/internal/netnstest"
)

// proc is a mirror node: this test binary run inside a namespace.
type proc struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startProc(t *testing.T, h *netnstest.Host, c childNode) *proc {
	t.Helper()
	spec, _ := json.Marshal(c)
	p := &proc{cmd: h.Command(os.Args[0], "-test.run=^$")}
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
	l := netnstest.NewLab(t, "mir")
	nsP, nsA, nsB := l.Add("p", 1), l.Add("a", 2), l.Add("b", 3)
	addrP := nsP.Addr
	base := t.TempDir()
	prim, replA, replB := filepath.Join(base, "p"), filepath.Join(base, "a"), filepath.Join(base, "b")
	writeFile(t, filepath.Join(prim, "index.html"), []byte("<h1>cluster</h1>"), 0o644)
	writeFile(t, filepath.Join(prim, "media/big.bin"), pseudoRandom(3, 8<<20), 0o644)
	os.Symlink("index.html", filepath.Join(prim, "home.html"))

	hb, backoff := 300*time.Millisecond, 500*time.Millisecond
	startProc(t, nsP, childNode{Name: "web01", Root: prim, Listen: addrP + ":8873", Heartbeat: hb, MaxBackoff: backoff})
	replica := func(ns *netnstest.Host, name, root string) *proc {
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
	nsB.SetLink(false)
	writeFile(t, filepath.Join(prim, "offline.html"), []byte("made while b was cut off"), 0o644)
	os.Remove(filepath.Join(prim, "media/moved.bin"))
	time.Sleep(3 * hb)
	nsB.SetLink(true)
	same("after the link came back", 30*time.Second)
}

package mirror

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestResumeAfterCut cuts the replica's connection in the middle of a
// large file: the part received is kept, and the next session sends only
// what is missing.
func TestResumeAfterCut(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	const size = 24 << 20
	big := pseudoRandom(7, size)
	writeFile(t, filepath.Join(prim, "video/big.mp4"), big, 0o644)
	_, addr := startPrimary(t, prim, Config{})
	px := newFaultProxy(t, addr)
	px.limit.Store(size / 2)
	r := startReplica(t, "web02", repl, px.Addr(), Config{})
	if !waitFor(20*time.Second, func() bool { return r.svc.Status().Counters.Sessions >= 2 }) {
		t.Fatal("the connection was never cut")
	}
	px.limit.Store(0)
	before := px.bytes.Load()
	waitSame(t, prim, repl, r, 20*time.Second)
	second := px.bytes.Load() - before
	// The first session carried about half; the second must not resend it.
	if second > size*3/4 {
		t.Errorf("after the cut %d bytes went over the wire for a %d-byte file; the partial transfer was not used", second, size)
	}
	entries, _ := os.ReadDir(filepath.Join(repl, "video"))
	for _, e := range entries {
		if isOwnFile(e.Name()) {
			t.Errorf("leftover %s", e.Name())
		}
	}
	t.Logf("second session: %d bytes for a %d-byte file", second, size)
}

// TestLinkCutAndRestored pulls the cable (no RST, no FIN) while the
// primary changes; both ends notice by heartbeats, and the replica
// converges once the link is back.
func TestLinkCutAndRestored(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(prim, "a.html"), []byte("one"), 0o644)
	p, addr := startPrimary(t, prim, Config{})
	px := newFaultProxy(t, addr)
	r := startReplica(t, "web02", repl, px.Addr(), Config{})
	waitSame(t, prim, repl, r, 10*time.Second)

	px.Cut()
	writeFile(t, filepath.Join(prim, "a.html"), []byte("two"), 0o644)
	writeFile(t, filepath.Join(prim, "b/new.html"), []byte("new"), 0o644)
	if !waitFor(5*time.Second, func() bool { return !r.svc.Status().Self.Connected }) {
		t.Fatal("the replica did not notice the cut")
	}
	if !waitFor(5*time.Second, func() bool {
		rs := p.svc.Status().Replicas
		return len(rs) == 1 && !rs[0].Connected && strings.Contains(rs[0].LastError, "timeout")
	}) {
		t.Errorf("the primary did not drop the silent replica: %+v", p.svc.Status().Replicas)
	}
	if err := r.svc.Health(); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("Health during the cut = %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	px.Restore()
	waitSame(t, prim, repl, r, 10*time.Second)
	if err := r.svc.Health(); err != nil {
		t.Errorf("Health after = %v", err)
	}
	st := p.svc.Status()
	if len(st.Replicas) != 1 || !st.Replicas[0].InSync || st.Replicas[0].Lag != 0 || st.Replicas[0].Name != "web02" {
		t.Errorf("primary's view: %+v", st.Replicas)
	}
}

// TestReplicaRestart stops a replica in the middle of its first copy and
// starts it again on the same folder.
func TestReplicaRestart(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	for i := range 200 {
		writeFile(t, filepath.Join(prim, "d", string(rune('a'+i%26)), strings.Repeat("x", 1+i%5)+".bin"), pseudoRandom(i, 50000+i), 0o644)
	}
	_, addr := startPrimary(t, prim, Config{})
	r := startReplica(t, "web02", repl, addr, Config{})
	waitFor(10*time.Second, func() bool { return r.svc.Status().Counters.FilesReceived > 10 })
	r.stop(t)
	r2 := startReplica(t, "web02", repl, addr, Config{})
	waitSame(t, prim, repl, r2, 20*time.Second)
}

// TestStatusShowsLag: while a replica cannot keep up, the primary's
// status shows it behind, by time and bytes; then in sync again.
func TestStatusShowsLag(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(prim, "a.html"), []byte("a"), 0o644)
	p, addr := startPrimary(t, prim, Config{Heartbeat: 2 * time.Second})
	px := newFaultProxy(t, addr)
	r := startReplica(t, "web02", repl, px.Addr(), Config{Heartbeat: 2 * time.Second})
	waitSame(t, prim, repl, r, 10*time.Second)
	if st := p.svc.Status(); st.Role != "primary" || len(st.Replicas) != 1 || !st.Replicas[0].InSync {
		t.Fatalf("status before: %+v", st)
	}
	px.Cut()
	writeFile(t, filepath.Join(prim, "big.bin"), pseudoRandom(1, 1<<20), 0o644)
	var rs ReplicaStatus
	if !waitFor(3*time.Second, func() bool {
		st := p.svc.Status()
		if len(st.Replicas) == 1 {
			rs = st.Replicas[0]
		}
		return !rs.InSync && rs.LagBytes >= 1<<20 && rs.Lag > 100*time.Millisecond
	}) {
		t.Errorf("the primary does not show the replica behind: %+v", rs)
	}
	px.Restore()
	waitSame(t, prim, repl, r, 20*time.Second)
	if !waitFor(5*time.Second, func() bool {
		st := p.svc.Status()
		return len(st.Replicas) == 1 && st.Replicas[0].InSync && st.Replicas[0].Lag == 0 && st.Replicas[0].LagBytes == 0
	}) {
		t.Errorf("not in sync again: %+v", p.svc.Status().Replicas)
	}
	st := r.svc.Status()
	if st.Role != "replica" || st.Self == nil || !st.Self.InSync || st.Counters.FilesReceived < 2 || st.Counters.WireIn == 0 {
		t.Errorf("replica status: %+v %+v", st, st.Self)
	}
}

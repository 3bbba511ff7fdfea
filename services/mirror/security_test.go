package mirror

import (
	"crypto/sha256"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/services/mirror/wire"
)

// fakePrimary accepts one replica at a time and plays script on it.
func fakePrimary(t *testing.T, name string, script func(t *testing.T, fw *frameWriter, r *wire.Reader)) string {
	t.Helper()
	id := testIdentity(t, name)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", id.serverConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := wire.NewReader(c)
				if _, err := r.Read(); err != nil {
					return
				}
				fw := newFrameWriter(c, 5*time.Second)
				fw.write(wire.Hello{Version: wire.Version, Name: name})
				script(t, fw, r)
				fw.flush()
				// Keep the session up, answering nothing more.
				for {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := r.Read(); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// readRequest skips acks and pings up to the next request.
func readRequest(t *testing.T, fw *frameWriter, r *wire.Reader) (wire.Request, bool) {
	fw.flush()
	for {
		m, err := r.Read()
		if err != nil {
			t.Errorf("reading request: %v", err)
			return wire.Request{}, false
		}
		switch m := m.(type) {
		case wire.Request:
			return m, true
		case wire.Ack, wire.Ping:
		default:
			t.Errorf("got %T, want a request", m)
			return wire.Request{}, false
		}
	}
}

// serveFile answers the next request with data as one literal.
func serveFile(t *testing.T, fw *frameWriter, r *wire.Reader, data []byte) wire.Request {
	req, ok := readRequest(t, fw, r)
	if !ok {
		return req
	}
	fw.write(wire.FileHead{ID: req.ID, Mode: 0o644, MtimeNs: 1e18, Size: uint64(len(data))})
	fw.write(wire.Literal{ID: req.ID, Data: data})
	fw.write(wire.FileEnd{ID: req.ID, Sum: sha256.Sum256(data)})
	fw.flush()
	return req
}

// TestMaliciousPrimary sends paths that try to leave the root; the
// replica refuses and counts them and writes nothing outside.
func TestMaliciousPrimary(t *testing.T) {
	base := t.TempDir()
	repl := filepath.Join(base, "www")
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	evil := []wire.Item{
		{Kind: wire.KindFile, Path: "../escape.txt", Size: 4},
		{Kind: wire.KindFile, Path: "/abs.txt", Size: 4},
		{Kind: wire.KindFile, Path: "ok/../../escape2.txt", Size: 4},
		{Kind: wire.KindFile, Path: "nul\x00.txt", Size: 4},
		{Kind: wire.KindFile, Path: ".~mirror.x.partial", Size: 4},
		{Kind: wire.KindFile, Path: "nodir/f.txt", Size: 4},
		{Kind: wire.KindSymlink, Path: "lnk", Target: outside, Mode: 0o777},
		{Kind: wire.KindFile, Path: "lnk/through.txt", Size: 4},
		{Kind: wire.KindDir, Path: "lnk/sub", Mode: 0o755},
	}
	good := []byte("good")
	requested := make(chan string, 10)
	addr := fakePrimary(t, "web01", func(t *testing.T, fw *frameWriter, r *wire.Reader) {
		items := append([]wire.Item{{Kind: wire.KindFile, Path: "ok.txt", Mode: 0o644, MtimeNs: 1e18, Size: 4}}, evil...)
		fw.write(wire.Batch{Gen: 1, Flags: wire.FlagReset | wire.FlagFinal, Items: items})
		requested <- serveFile(t, fw, r, good).Path
		// The same tricks as live changes.
		fw.write(wire.Batch{Gen: 2, Flags: wire.FlagFinal, Items: evil})
		fw.write(wire.Batch{Gen: 3, Flags: wire.FlagFinal, Items: []wire.Item{{Kind: wire.KindDelete, Path: "../outside"}}})
		fw.flush()
	})
	r := startReplica(t, "web02", repl, addr, Config{})
	select {
	case p := <-requested:
		if p != "ok.txt" {
			t.Errorf("first request for %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no request")
	}
	want := int64(2*(len(evil)-1) + 1) // all but "lnk" itself, twice, and the delete
	if !waitFor(5*time.Second, func() bool { return r.svc.Status().Counters.Refused >= want }) {
		t.Errorf("refused %d, want %d", r.svc.Status().Counters.Refused, want)
	}
	if b, err := os.ReadFile(filepath.Join(repl, "ok.txt")); err != nil || string(b) != "good" {
		t.Errorf("ok.txt: %q, %v", b, err)
	}
	if tgt, err := os.Readlink(filepath.Join(repl, "lnk")); err != nil || tgt != outside {
		t.Errorf("the link was not copied as a link: %q %v", tgt, err)
	}
	for _, p := range []string{filepath.Join(base, "escape.txt"), filepath.Join(base, "escape2.txt"), "/abs.txt", filepath.Join(outside, "through.txt"), filepath.Join(outside, "sub")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written outside the root", p)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("outside was deleted: %v", err)
	}
	select {
	case p := <-requested:
		t.Errorf("the replica asked for %q", p)
	default:
	}
}

// TestPlantedSymlink: a link planted in the replica's root where the
// primary has a folder is replaced, never written through.
func TestPlantedSymlink(t *testing.T) {
	base := t.TempDir()
	prim, repl, outside := filepath.Join(base, "p"), filepath.Join(base, "r"), filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	writeFile(t, filepath.Join(prim, "d/f.html"), []byte("in d"), 0o644)
	os.MkdirAll(repl, 0o755)
	os.Symlink(outside, filepath.Join(repl, "d"))
	_, addr := startPrimary(t, prim, Config{})
	r := startReplica(t, "web02", repl, addr, Config{})
	waitSame(t, prim, repl, r, 10*time.Second)
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("written through the planted link: %v", entries)
	}
}

// TestCorruptDataRefetched: a primary whose checksum does not match
// the data gets asked again, without a basis.
func TestCorruptDataRefetched(t *testing.T) {
	repl := t.TempDir()
	writeFile(t, filepath.Join(repl, "f.txt"), []byte("old content here"), 0o644)
	second := make(chan wire.Request, 1)
	addr := fakePrimary(t, "web01", func(t *testing.T, fw *frameWriter, r *wire.Reader) {
		data := []byte("new content")
		fw.write(wire.Batch{Gen: 1, Flags: wire.FlagReset | wire.FlagFinal, Items: []wire.Item{{Kind: wire.KindFile, Path: "f.txt", Mode: 0o644, MtimeNs: 1e18, Size: uint64(len(data))}}})
		req, _ := readRequest(t, fw, r)
		if len(req.Blocks) == 0 {
			t.Error("first request offered no basis")
		}
		fw.write(wire.FileHead{ID: req.ID, Mode: 0o644, MtimeNs: 1e18, Size: uint64(len(data))})
		fw.write(wire.Copy{ID: req.ID, Index: 99, Count: 1}) // outside the basis
		fw.write(wire.FileEnd{ID: req.ID})
		second <- serveFile(t, fw, r, data)
	})
	r := startReplica(t, "web02", repl, addr, Config{})
	select {
	case req := <-second:
		if len(req.Blocks) != 0 {
			t.Error("the retry offered the basis again")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no second request")
	}
	if !waitFor(5*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(repl, "f.txt"))
		return string(b) == "new content"
	}) {
		t.Error("not fixed")
	}
	if c := r.svc.Status().Counters.Corrupt; c != 1 {
		t.Errorf("corrupt = %d", c)
	}
}

// TestAuth: a replica takes data only from a peer that proves the
// primary's name with the cluster's keys, and the primary only serves
// cluster members.
func TestAuth(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(prim, "a"), []byte("x"), 0o644)
	p, addr := startPrimary(t, prim, Config{})

	other, err := IdentityFromSecret([]byte("another cluster's secret!!"), "web02")
	if err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, "web02", repl, addr, Config{Identity: other})
	if !waitFor(5*time.Second, func() bool { return r.svc.Status().Counters.AuthFailures > 0 }) {
		t.Error("a replica with another secret got through")
	}
	r.stop(t)
	if !waitFor(5*time.Second, func() bool { return p.svc.Status().Counters.AuthFailures > 0 }) {
		t.Error("the primary did not count the failed handshake")
	}

	// A node of the cluster that is not the primary named.
	impostor := fakePrimary(t, "web03", func(t *testing.T, fw *frameWriter, r *wire.Reader) {
		fw.write(wire.Batch{Gen: 1, Flags: wire.FlagReset | wire.FlagFinal})
	})
	r2 := startReplica(t, "web02", repl, impostor, Config{})
	if !waitFor(5*time.Second, func() bool { return r2.svc.Status().Counters.AuthFailures > 0 }) {
		t.Error("the replica accepted web03 as web01")
	}
	if _, err := os.Stat(filepath.Join(repl, "a")); err == nil {
		t.Error("data arrived")
	}
	if _, err := IdentityFromSecret([]byte("short"), "x"); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
	// Plain TCP without TLS is refused.
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Write(wire.Append(nil, wire.Hello{Version: 1, Name: "x"}))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, _ := c.Read(buf)
		if n > 0 && buf[0] == byte(wire.THello) {
			t.Error("the primary spoke the protocol without TLS")
		}
		c.Close()
	}
}

// TestEmptyPrimaryDeletesNothing: a primary whose web root is empty (its
// data partition did not mount) does not wipe the replicas.
func TestEmptyPrimaryDeletesNothing(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(repl, "index.html"), []byte("keep me"), 0o644)
	_, addr := startPrimary(t, prim, Config{})
	r := startReplica(t, "web02", repl, addr, Config{})
	if !waitFor(10*time.Second, func() bool { return strings.Contains(r.svc.Status().LastError, "empty") }) {
		t.Fatalf("no warning: %+v", r.svc.Status())
	}
	if _, err := os.Stat(filepath.Join(repl, "index.html")); err != nil {
		t.Error("the replica was wiped")
	}
}

// TestDeletedWhileInFlight: a file the primary deletes while its content
// is on the way does not come back on the replica.
func TestDeletedWhileInFlight(t *testing.T) {
	repl := t.TempDir()
	done := make(chan struct{})
	addr := fakePrimary(t, "web01", func(t *testing.T, fw *frameWriter, r *wire.Reader) {
		data := []byte("short-lived")
		fw.write(wire.Batch{Gen: 1, Flags: wire.FlagReset | wire.FlagFinal, Items: []wire.Item{
			{Kind: wire.KindFile, Path: "f.txt", Mode: 0o644, MtimeNs: 1e18, Size: uint64(len(data))},
			{Kind: wire.KindFile, Path: "g.txt", Mode: 0o644, MtimeNs: 1e18, Size: 1}}})
		req, _ := readRequest(t, fw, r)
		req2, _ := readRequest(t, fw, r)
		fw.write(wire.Batch{Gen: 2, Flags: wire.FlagFinal, Items: []wire.Item{{Kind: wire.KindDelete, Path: req.Path}}})
		for _, q := range []wire.Request{req, req2} {
			d := data
			if q.Path == "g.txt" {
				d = []byte("g")
			}
			fw.write(wire.FileHead{ID: q.ID, Mode: 0o644, MtimeNs: 1e18, Size: uint64(len(d))})
			fw.write(wire.Literal{ID: q.ID, Data: d})
			fw.write(wire.FileEnd{ID: q.ID, Sum: sha256.Sum256(d)})
		}
		fw.flush()
		close(done)
	})
	r := startReplica(t, "web02", repl, addr, Config{})
	<-done
	if !waitFor(5*time.Second, func() bool { st := r.svc.Status(); return st.Self != nil && st.Self.InSync }) {
		t.Fatal("not in sync")
	}
	_, errF := os.Stat(filepath.Join(repl, "f.txt"))
	_, errG := os.Stat(filepath.Join(repl, "g.txt"))
	if errF == nil {
		t.Error("f.txt came back after its deletion")
	}
	if errG != nil {
		t.Error("g.txt missing")
	}
}

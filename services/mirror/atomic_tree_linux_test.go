package mirror

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAtomicTreeNeverMixesGenerations hammers a replica under AtomicTree
// with readers that each open the root once (as the web server does) and
// read three files that always change together on the primary: no read
// may see two versions. The replica's root starts as a real folder with a
// file of its own in an excluded folder, which must survive every switch.
func TestAtomicTreeNeverMixesGenerations(t *testing.T) {
	prim, dir := t.TempDir(), t.TempDir()
	repl := filepath.Join(dir, "www")
	files := []string{"index.html", "css/site.css", "js/app.js"}
	// The three files change within microseconds, well within the
	// primary's BatchDelay, so that each change is one generation there.
	write := func(v int) {
		for _, f := range files {
			os.MkdirAll(filepath.Join(prim, filepath.Dir(f)), 0o755)
		}
		for i, f := range files {
			// Different sizes per file and version, so no delta is free.
			tmp := filepath.Join(prim, f+".new")
			os.WriteFile(tmp, []byte(fmt.Sprintf("v%04d %s", v, strings.Repeat("x", 1000*(i+1)+v))), 0o644)
			os.Rename(tmp, filepath.Join(prim, f))
		}
	}
	write(0)
	writeFile(t, filepath.Join(repl, "stats", "local.txt"), []byte("mine"), 0o644)
	writeFile(t, filepath.Join(repl, "stale.html"), []byte("old"), 0o644)

	p, addr := startPrimary(t, prim, Config{BatchDelay: 150 * time.Millisecond})
	r := startReplica(t, "web02", repl, addr, Config{AtomicTree: true, GenerationGrace: 300 * time.Millisecond, Excludes: []string{"stats"}})

	version := func(root *os.Root) (string, error) {
		v := ""
		for _, f := range files {
			b, err := root.ReadFile(f)
			if err != nil {
				return "", err
			}
			if len(b) < 5 {
				return "", fmt.Errorf("%s is short", f)
			}
			if v != "" && string(b[:5]) != v {
				return "", fmt.Errorf("%s is %s while %s is %s", files[0], v, f, b[:5])
			}
			v = string(b[:5])
		}
		return v, nil
	}
	readVersion := func() (string, error) {
		root, err := os.OpenRoot(repl)
		if err != nil {
			return "", err
		}
		defer root.Close()
		return version(root)
	}
	if !waitFor(10*time.Second, func() bool { v, err := readVersion(); return err == nil && v == "v0000" }) {
		t.Fatal("the replica never showed the first version")
	}
	if fi, err := os.Lstat(repl); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the web root is not a link: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(repl, "stale.html")); err == nil {
		t.Error("stale.html, absent on the primary, is still served")
	}

	var stop atomic.Bool
	var reads, mixed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := readVersion(); err != nil {
					mixed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				reads.Add(1)
			}
		}()
	}
	const rounds = 15
	for v := 1; v <= rounds; v++ {
		gen := p.svc.Status().Gen
		write(v)
		// The next change waits until the replica has applied this one:
		// a replica fetches a file's content after hearing of the change,
		// so a change on the primary while it fetches may land in the
		// same generation (the next one corrects it).
		waitFor(3*time.Second, func() bool {
			g := p.svc.Status().Gen
			st := r.svc.Status()
			return g > gen && st.Self != nil && st.Self.AckedGen >= g
		})
		time.Sleep(20 * time.Millisecond)
	}
	want := fmt.Sprintf("v%04d", rounds)
	ok := waitFor(10*time.Second, func() bool { v, err := readVersion(); return err == nil && v == want })
	stop.Store(true)
	wg.Wait()
	if !ok {
		t.Fatal("the last version never arrived")
	}
	if n := mixed.Load(); n != 0 {
		t.Errorf("%d of %d reads saw a mix or a missing file; first: %v", n, n+reads.Load(), firstErr.Load())
	}
	st := r.svc.Status()
	t.Logf("%d consistent reads, %d switches", reads.Load(), st.Counters.Switches)
	if st.Counters.Switches < 2 {
		t.Errorf("%d switches, want several", st.Counters.Switches)
	}
	if b, err := os.ReadFile(filepath.Join(repl, "stats", "local.txt")); err != nil || string(b) != "mine" {
		t.Errorf("the excluded local file did not survive the switches: %q %v", b, err)
	}
	// Retired generations go after the grace period.
	if !waitFor(5*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "www.gen-*"))
		return len(m) == 1
	}) {
		m, _ := filepath.Glob(filepath.Join(dir, "www.gen-*"))
		t.Errorf("generations left after the grace period: %v", m)
	}
}

// TestGenerationsSetupAndGC checks the start from a missing root, a
// switch, and the removal of retired generations on an injected clock.
func TestGenerationsSetupAndGC(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "www")
	g := newGenerations(root, time.Minute, nil, slog.Default())
	if err := g.setup(); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(root); err != nil || target != "www.gen-1" {
		t.Fatalf("root links to %q (%v), want www.gen-1", target, err)
	}
	writeFile(t, filepath.Join(g.stage, "a", "b.txt"), []byte("b"), 0o640)
	os.Symlink("b.txt", filepath.Join(g.stage, "a", "l"))
	writeFile(t, filepath.Join(g.stage, "a", tempPrefix+"x.tmp"), []byte("tmp"), 0o600)
	if err := g.publish(nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "a", "l")); err != nil || string(b) != "b" {
		t.Errorf("through the new generation: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "a", "b.txt")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "a", tempPrefix+"x.tmp")); err == nil {
		t.Error("a temporary file was published")
	}
	// A second setup (a restart) keeps the link and the working copy.
	g2 := newGenerations(root, time.Minute, nil, slog.Default())
	if err := g2.setup(); err != nil {
		t.Fatal(err)
	}
	if g2.current != "www.gen-2" {
		t.Errorf("after a restart the current generation is %q", g2.current)
	}
	now := time.Now()
	g.gc(now.Add(30 * time.Second))
	if _, err := os.Stat(filepath.Join(dir, "www.gen-1")); err != nil {
		t.Error("a generation was removed within its grace period")
	}
	g.gc(now.Add(2 * time.Minute))
	if _, err := os.Stat(filepath.Join(dir, "www.gen-1")); err == nil {
		t.Error("a generation outlived its grace period")
	}
	if _, err := os.Stat(filepath.Join(dir, "www.gen-2")); err != nil {
		t.Error("the current generation was removed")
	}
}

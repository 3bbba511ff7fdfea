package mirror

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestConvergence(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(prim, "index.html"), []byte("<h1>hello</h1>"), 0o644)
	writeFile(t, filepath.Join(prim, "a/b/big.bin"), pseudoRandom(1, 3<<20), 0o600)
	writeFile(t, filepath.Join(prim, "a/script.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("../index.html", filepath.Join(prim, "a/link"))
	os.Mkdir(filepath.Join(prim, "empty"), 0o700)
	// Leftovers on the replica: deleted, or replaced by the primary's kind.
	writeFile(t, filepath.Join(repl, "stale.txt"), []byte("old"), 0o644)
	writeFile(t, filepath.Join(repl, "empty/x"), []byte("old"), 0o644)
	os.MkdirAll(filepath.Join(repl, "index.html/sub"), 0o755)

	_, addr := startPrimary(t, prim, Config{})
	r := startReplica(t, "web02", repl, addr, Config{})
	waitSame(t, prim, repl, r, 10*time.Second)

	steps := []struct {
		name string
		do   func()
	}{
		{"create", func() { writeFile(t, filepath.Join(prim, "new/deep/page.html"), []byte("new page"), 0o644) }},
		{"modify", func() { writeFile(t, filepath.Join(prim, "index.html"), []byte("<h1>changed</h1>"), 0o644) }},
		{"append to big", func() {
			f, _ := os.OpenFile(filepath.Join(prim, "a/b/big.bin"), os.O_APPEND|os.O_WRONLY, 0)
			f.Write(pseudoRandom(2, 10000))
			f.Close()
		}},
		{"delete", func() { os.Remove(filepath.Join(prim, "a/script.sh")) }},
		{"rename file", func() { os.Rename(filepath.Join(prim, "index.html"), filepath.Join(prim, "home.html")) }},
		{"rename dir", func() { os.Rename(filepath.Join(prim, "new"), filepath.Join(prim, "old")) }},
		{"mode change", func() { os.Chmod(filepath.Join(prim, "a/b/big.bin"), 0o640) }},
		{"link retarget", func() {
			os.Remove(filepath.Join(prim, "a/link"))
			os.Symlink("b/big.bin", filepath.Join(prim, "a/link"))
		}},
		{"file becomes dir", func() {
			os.Remove(filepath.Join(prim, "home.html"))
			writeFile(t, filepath.Join(prim, "home.html/index.html"), []byte("dir now"), 0o644)
		}},
		{"delete tree", func() { os.RemoveAll(filepath.Join(prim, "a")) }},
	}
	for _, s := range steps {
		s.do()
		waitSame(t, prim, repl, r, 5*time.Second)
		t.Logf("%s: converged", s.name)
	}
	st := r.svc.Status()
	if st.Counters.Refused != 0 || st.Counters.Corrupt != 0 {
		t.Errorf("counters: %+v", st.Counters)
	}
}

// TestRenameSendsLittle: a renamed file and a moved folder cost their
// checksums, not their content.
func TestRenameSendsLittle(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(prim, "a/big.bin"), pseudoRandom(1, 4<<20), 0o644)
	writeFile(t, filepath.Join(prim, "dir/one.bin"), pseudoRandom(2, 2<<20), 0o644)
	writeFile(t, filepath.Join(prim, "dir/two.bin"), pseudoRandom(3, 2<<20), 0o644)
	_, addr := startPrimary(t, prim, Config{})
	px := newFaultProxy(t, addr)
	r := startReplica(t, "web02", repl, px.Addr(), Config{})
	waitSame(t, prim, repl, r, 10*time.Second)
	before := px.bytes.Load()
	os.Rename(filepath.Join(prim, "a/big.bin"), filepath.Join(prim, "a/renamed.bin"))
	os.Rename(filepath.Join(prim, "dir"), filepath.Join(prim, "moved"))
	waitSame(t, prim, repl, r, 10*time.Second)
	if n := px.bytes.Load() - before; n > 1<<20 {
		t.Errorf("renaming 8 MB sent %d bytes", n)
	} else {
		t.Logf("renaming 8 MB sent %d bytes", n)
	}
	if !waitFor(5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(repl, stashDir))
		return err != nil
	}) {
		t.Error("the stash was left behind")
	}
}

package mirror

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("test cluster secret 0123456789")

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testIdentity(t testing.TB, name string) *Identity {
	t.Helper()
	id, err := IdentityFromSecret(testSecret, name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// node is a running mirror service in the test process.
type node struct {
	svc    *Service
	cancel context.CancelFunc
	done   chan error
	root   string
	once   sync.Once
}

func (n *node) stop(t testing.TB) {
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s")
		}
	})
}

func startNode(t testing.TB, cfg Config) *node {
	t.Helper()
	if cfg.Identity == nil {
		cfg.Identity = testIdentity(t, cfg.Name)
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 200 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 300 * time.Millisecond
	}
	if cfg.BatchDelay == 0 {
		cfg.BatchDelay = 10 * time.Millisecond
	}
	cfg.NoFsync = true
	svc, err := NewService(cfg, testLog(t).With("node", cfg.Name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{svc: svc, cancel: cancel, done: make(chan error, 1), root: cfg.Root}
	go func() { n.done <- svc.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// startPrimary starts a primary on root and returns it with its address.
func startPrimary(t testing.TB, root string, cfg Config) (*node, string) {
	t.Helper()
	cfg.Name, cfg.Root, cfg.Primary = "web01", root, ""
	n := startNode(t, cfg)
	if !waitFor(10*time.Second, func() bool { return n.svc.ListenAddr() != "" }) {
		t.Fatal("primary did not listen")
	}
	return n, n.svc.ListenAddr()
}

func startReplica(t testing.TB, name, root, primary string, cfg Config) *node {
	t.Helper()
	cfg.Name, cfg.Root, cfg.Primary, cfg.PrimaryName = name, root, primary, "web01"
	return startNode(t, cfg)
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// treeDiff describes how the trees a and b differ (content, kind, mode,
// file mtime, link target), leaving out the mirror's own files and paths
// skip reports; "" when equal.
func treeDiff(a, b string, skip func(rel string) bool) string {
	la, lb := listTree(a, skip), listTree(b, skip)
	var out []string
	for p, x := range la {
		if y, ok := lb[p]; !ok {
			out = append(out, "only in primary: "+p)
		} else if x != y {
			out = append(out, fmt.Sprintf("%s: %s != %s", p, x, y))
		}
	}
	for p := range lb {
		if _, ok := la[p]; !ok {
			out = append(out, "only in replica: "+p)
		}
	}
	sort.Strings(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... %d more", len(out)-10))
	}
	return strings.Join(out, "\n")
}

func listTree(dir string, skip func(string) bool) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || filepath.Clean(p) == filepath.Clean(dir) {
			return nil
		}
		rel := filepath.ToSlash(p[len(filepath.Clean(dir))+1:])
		if isOwnFile(d.Name()) || (skip != nil && skip(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			out[rel] = fmt.Sprintf("file %v %d %x", fi.Mode(), fi.ModTime().UnixNano(), hashOf(b))
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %v", fi.Mode())
		case fi.Mode()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			out[rel] = "link " + t
		}
		return nil
	})
	return out
}

func hashOf(b []byte) []byte {
	h := fnv64(b)
	return h[:]
}

func fnv64(b []byte) (s [8]byte) {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	for i := range s {
		s[i] = byte(h >> (8 * i))
	}
	return s
}

// waitSame waits until the trees match and the replica reports in sync.
func waitSame(t testing.TB, prim, repl string, r *node, d time.Duration) {
	t.Helper()
	var diff string
	ok := waitFor(d, func() bool {
		diff = treeDiff(prim, repl, nil)
		if diff != "" {
			return false
		}
		if r == nil {
			return true
		}
		st := r.svc.Status()
		return st.Self != nil && st.Self.InSync
	})
	if !ok {
		st := r.svc.Status()
		t.Fatalf("trees differ after %s:\n%s\nreplica status: %+v self %+v", d, diff, st, st.Self)
	}
}

func writeFile(t testing.TB, name string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(name, mode)
}

func pseudoRandom(seed, n int) []byte {
	b := make([]byte, n)
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

var _ = bytes.Equal

package mirror

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/piimage/piimage/services/mirror/wire"
)

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"index.html", true},
		{"a/b/c.css", true},
		{"dir with space/ü.html", true},
		{"..hidden", true},
		{"a/...", true},
		{"", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/./b", false},
		{".", false},
		{"a//b", false},
		{"a/", false},
		{"a\x00b", false},
		{".~mirror.x.tmp", false},
		{"a/.~mirror.b.partial", false},
		{strings.Repeat("x", 256), false},
		{strings.Repeat("a/", 2049), false},
	} {
		err := checkPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("checkPath(%q) = %v, want ok %v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("checkPath(%q): %v is not ErrUnsafePath", tc.path, err)
		}
	}
}

func TestExcluder(t *testing.T) {
	seed := []string{"**/stats", "**/error", "**/files/pictures"}
	for _, tc := range []struct {
		patterns []string
		path     string
		dir      bool
		want     bool
	}{
		{seed, "stats", true, true},
		{seed, "site/stats", true, true},
		{seed, "site/stats/today.html", false, true},
		{seed, "site/statistics", true, false},
		{seed, "error", false, true},
		{seed, "sites/default/files/pictures", true, true},
		{seed, "sites/default/files/pictures/cat.jpg", false, true},
		{seed, "sites/default/files/picture", true, false},
		{seed, "files", true, false},
		{[]string{"*.tmp"}, "a/b/x.tmp", false, true},
		{[]string{"*.tmp"}, "x.tmp.html", false, false},
		{[]string{"/cache"}, "cache", true, true},
		{[]string{"/cache"}, "a/cache", true, false},
		{[]string{"cache/"}, "cache", false, false},
		{[]string{"cache/"}, "x/cache", true, true},
		{[]string{"a/**/z"}, "a/z", false, true},
		{[]string{"a/**/z"}, "a/b/c/z", false, true},
		{[]string{"a/**/z"}, "b/a/q/z", false, true},
		{[]string{"a?c"}, "abc", false, true},
		{[]string{"[ab]x"}, "bx", false, true},
		{nil, "anything", false, false},
	} {
		e, err := newExcluder(tc.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.excluded(tc.path, tc.dir); got != tc.want {
			t.Errorf("%q excluded(%q, dir %v) = %v, want %v", tc.patterns, tc.path, tc.dir, got, tc.want)
		}
	}
	if _, err := newExcluder([]string{"a/[b"}); err == nil {
		t.Error("a bad pattern was accepted")
	}
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		in   fs.FileMode
		wire uint32
	}{
		{0o644, 0o644},
		{0o755 | fs.ModeDir, 0o755},
		{0o1777 | fs.ModeDir | fs.ModeSticky, 0o1777},
		{0o4755 | fs.ModeSetuid, 0o755}, // setuid dropped
		{0o2755 | fs.ModeSetgid, 0o755},
	} {
		if got := wireMode(tc.in); got != tc.wire {
			t.Errorf("wireMode(%v) = %o, want %o", tc.in, got, tc.wire)
		}
		if back := wireMode(fileMode(tc.wire)); back != tc.wire {
			t.Errorf("round trip of %o: %o", tc.wire, back)
		}
	}
}

func TestOwnNames(t *testing.T) {
	if got := tempName("a/b/c.html", "x1"); got != "a/b/.~mirror.c.html.x1.tmp" {
		t.Errorf("tempName = %q", got)
	}
	if got := partialName("a/c.html"); got != "a/.~mirror.c.html.partial" {
		t.Errorf("partialName = %q", got)
	}
	for _, tc := range []struct {
		in, base string
		ok       bool
	}{
		{"a/.~mirror.c.html.partial", "a/c.html", true},
		{".~mirror.x.partial", "x", true},
		{"a/.~mirror.c.html.x1.tmp", "", false},
		{".~mirror..partial", "", false},
	} {
		base, ok := partialBase(tc.in)
		if ok != tc.ok || base != tc.base {
			t.Errorf("partialBase(%q) = %q, %v", tc.in, base, ok)
		}
	}
}

func TestBatchFrames(t *testing.T) {
	big := make([]string, 3000)
	for i := range big {
		big[i] = strings.Repeat("p", 300)
	}
	frames := batchFramesOf(big)
	if len(frames) < 2 {
		t.Fatalf("%d frames", len(frames))
	}
	total := 0
	for i, f := range frames {
		total += len(f.Items)
		if (i == 0) != (f.Flags&1 != 0) {
			t.Errorf("frame %d flags %b: reset only on the first", i, f.Flags)
		}
		if (i == len(frames)-1) != (f.Flags&2 != 0) {
			t.Errorf("frame %d flags %b: final only on the last", i, f.Flags)
		}
	}
	if total != len(big) {
		t.Errorf("%d items in frames, want %d", total, len(big))
	}
}

func batchFramesOf(paths []string) []wire.Batch {
	items := make([]wire.Item, len(paths))
	for i, p := range paths {
		items[i] = wire.Item{Kind: wire.KindDir, Path: p}
	}
	return batchFrames(1, wire.FlagReset, items)
}

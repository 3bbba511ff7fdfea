package rootfs

import (
	"bytes"
	"context"
	"debug/elf"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/piimage/piimage/boards"
)

// TestWithFsck puts each board's pinned e2fsck into a root tree (fetched
// from the cache, or once from apt's Debian mirror: about 650 kB per
// architecture) and checks that it is an executable for the board's CPU
// beside its copyright file, and that the tree keeps what it had.
func TestWithFsck(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads the e2fsck-static packages when not cached")
	}
	for _, tc := range []struct {
		board   string
		machine elf.Machine
	}{
		{"pi2", elf.EM_ARM},
		{"pi3", elf.EM_AARCH64},
		{"pi4", elf.EM_AARCH64},
	} {
		b, err := boards.Get(tc.board)
		if err != nil {
			t.Fatal(err)
		}
		root, err := withFsck(context.Background(), Options{Board: b}, rootTree([]byte("init"), []byte("{}"), nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.board, err)
		}
		st, err := fs.Stat(root, FsckPath)
		if err != nil {
			t.Fatalf("%s: %v", tc.board, err)
		}
		if st.Mode() != 0o755 {
			t.Errorf("%s: %s mode %v, want 0755", tc.board, FsckPath, st.Mode())
		}
		bin, _ := fs.ReadFile(root, FsckPath)
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: %s: %v", tc.board, FsckPath, err)
		}
		if f.Machine != tc.machine {
			t.Errorf("%s: e2fsck is for %v, want %v", tc.board, f.Machine, tc.machine)
		}
		if lic, err := fs.ReadFile(root, FsckCopyrightPath); err != nil || !strings.Contains(string(lic), "GPL") {
			t.Errorf("%s: %s: %v", tc.board, FsckCopyrightPath, err)
		}
		for _, d := range []string{"sbin", "usr/share/doc"} {
			if st, err := fs.Stat(root, d); err != nil || st.Mode() != fs.ModeDir|0o755 {
				t.Errorf("%s: folder %s: %v, %v", tc.board, d, st, err)
			}
		}
		if init, err := fs.ReadFile(root, "init"); err != nil || string(init) != "init" {
			t.Errorf("%s: init lost: %q, %v", tc.board, init, err)
		}
		t.Logf("%s: e2fsck %d bytes", tc.board, len(bin))
	}
	if _, err := withFsck(context.Background(), Options{}, os.DirFS(t.TempDir())); err == nil {
		t.Error("withFsck accepted a root tree that is not a map")
	}
}

//go:build bench

package ext4

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkMke2fs is the incumbent for BenchmarkWrite: mke2fs -d builds the
// same 1.5 GiB filesystem from the same tree written out to a directory
// (not timed). Run both with: go test -tags bench -bench . ./image/ext4/
func BenchmarkMke2fs(b *testing.B) {
	if _, err := exec.LookPath("mke2fs"); err != nil {
		b.Skip("mke2fs not installed (apt-get install e2fsprogs)")
	}
	tree, total := benchTree()
	src := filepath.Join(b.TempDir(), "tree")
	if err := os.CopyFS(src, tree); err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(b.TempDir(), "img")
	b.SetBytes(total)
	for b.Loop() {
		if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096",
			"-E", "lazy_itable_init=1,lazy_journal_init=1", "-d", src, img, "1536M").CombinedOutput()
		if err != nil {
			b.Fatalf("mke2fs: %v: %s", err, out)
		}
	}
}

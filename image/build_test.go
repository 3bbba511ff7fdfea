package image

import (
	"context"
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func smallPlan(root fs.FS) *Plan {
	return &Plan{
		Layout:  Layout{DiskID: 0x1234, TotalSize: 128 * MiB, BootSize: 64 * MiB, RootSize: 8 * MiB},
		Boot:    fstest.MapFS{"config.txt": {Data: []byte("os_prefix=slot-a/\n")}},
		Root:    root,
		Data:    fstest.MapFS{"piimage/last-good.yaml": {Data: []byte("hostname: x\n"), Mode: 0o600}},
		ModTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestWriteSmallImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.img")
	res, err := Write(context.Background(), out, smallPlan(fstest.MapFS{"init": {Data: []byte("#!"), Mode: 0o755}}))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 128*MiB || res.Size != 128*MiB {
		t.Errorf("image size %d, result %d; want %d", st.Size(), res.Size, 128*MiB)
	}
	if len(res.Stages) != 4 {
		t.Errorf("stages = %v", res.Stages)
	}
}

// A failed build leaves neither an image nor a temporary file behind.
func TestWriteFailureLeavesNothing(t *testing.T) {
	big := make([]byte, 12<<20)
	rand.Read(big) // incompressible: cannot fit the 8 MiB root slot
	dir := t.TempDir()
	out := filepath.Join(dir, "x.img")
	_, err := Write(context.Background(), out, smallPlan(fstest.MapFS{"big": {Data: big, Mode: 0o644}}))
	if err == nil {
		t.Fatal("Write put 12 MB of random bytes into an 8 MiB root slot")
	}
	if !strings.Contains(err.Error(), "root slot A") {
		t.Errorf("error %q does not name the stage", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("failed build left %v in the output folder", ents)
	}
}

func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := Write(ctx, filepath.Join(dir, "x.img"), smallPlan(fstest.MapFS{})); err == nil {
		t.Fatal("Write ignored a cancelled context")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("cancelled build left %v", ents)
	}
}

package flash

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

var loopRE = regexp.MustCompile(`^/dev/loop[0-9]+$`)

// newLoop creates a file of size bytes filled with garbage (an old card's
// contents), attaches a loop device to it and detaches it at the end. It
// skips unless root with loop devices. The device path comes from losetup
// and is checked twice: its shape, and that losetup names our file as its
// backing file.
func newLoop(t *testing.T, size int64) (dev, file string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices: ", err)
	}
	losetup := needTool(t, "losetup")
	file = filepath.Join(t.TempDir(), "card.img")
	junk := random("old card", 1<<20)
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += int64(len(junk)) {
		if _, err := f.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out, err := exec.Command(losetup, "-f", "--show", file).Output()
	if err != nil {
		t.Skipf("losetup -f --show: %v", err)
	}
	dev = strings.TrimSpace(string(out))
	if !loopRE.MatchString(dev) {
		t.Fatalf("losetup printed %q, not a loop device", dev)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	back, err := exec.Command(losetup, "--list", "--noheadings", "--output", "BACK-FILE", dev).Output()
	if err != nil || strings.TrimSpace(string(back)) != file {
		t.Fatalf("%s is backed by %q, not our %s (%v)", dev, back, file, err)
	}
	return dev, file
}

// openLoop checks and opens a loop device we created, as flash would.
func openLoop(t *testing.T, dev string, imageSize int64) *Target {
	t.Helper()
	if !loopRE.MatchString(dev) {
		t.Fatalf("refusing to open %q: not a loop device from newLoop", dev)
	}
	var sys System
	d, err := sys.Lookup(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Removable || !strings.HasPrefix(d.RemovableWhy, "loop device over the file ") {
		t.Fatalf("loop device not seen as a loop over a file: %+v", d)
	}
	if err := Check(d, Policy{ImageSize: imageSize}); err != nil {
		t.Fatal(err)
	}
	tgt, err := sys.OpenDevice(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	return tgt
}

// TestFlashLoop writes an image with a new overlay and a rebuilt data
// partition to a loop device over a garbage-filled file and checks the
// card with fsck.fat, mtype, e2fsck and debugfs, and byte for byte where
// the card must hold the image.
func TestFlashLoop(t *testing.T) {
	for _, mode := range []zeroMode{zeroOut, zeroWrite} {
		t.Run(map[zeroMode]string{zeroOut: "BLKZEROOUT", zeroWrite: "zeros written"}[mode], func(t *testing.T) {
			testFlashLoop(t, mode)
		})
	}
}

func testFlashLoop(t *testing.T, mode zeroMode) {
	dev, _ := newLoop(t, 160*mib)
	im, _ := openTestImage(t, false)
	newOverlay := strings.ReplaceAll(testOverlay, "web01", "web07")
	if err := im.ReplaceBootFile("node.yaml", []byte(newOverlay)); err != nil {
		t.Fatal(err)
	}
	tree := fstest.MapFS{
		".":                      {Mode: fs.ModeDir | 0o755},
		"piimage":                {Mode: fs.ModeDir | 0o700},
		"piimage/last-good.yaml": {Data: []byte(newOverlay), Mode: 0o600},
	}
	if err := im.ReplaceData(0, tree); err != nil {
		t.Fatal(err)
	}
	tgt := openLoop(t, dev, im.Size())
	if mode == zeroOut && tgt.zero != zeroOut {
		t.Skip("this loop device does not offload write-zeroes")
	}
	tgt.zero = mode
	t.Logf("block size %d", tgt.align)
	res, err := Write(context.Background(), im, tgt, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if (mode == zeroWrite) != (res.Zeroed == 0) {
		t.Errorf("zero mode %d: %d bytes zeroed", mode, res.Zeroed)
	}
	if got := checkFAT(t, dev); got != newOverlay {
		t.Errorf("node.yaml on the card: %q", got)
	}
	if got := checkData(t, dev); got != newOverlay {
		t.Errorf("last good copy on the card: %q", got)
	}
	card, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, im)
	for _, e := range im.Extents() {
		if !bytes.Equal(card[e.Offset:e.End()], want[e.Offset:e.End()]) {
			t.Errorf("card differs from the image in %+v", e)
		}
	}
}

// TestFlashLoopInterrupted cancels a write to a loop device: the error
// says so and the garbage card's partition table is gone.
func TestFlashLoopInterrupted(t *testing.T) {
	dev, _ := newLoop(t, 128*mib)
	im, _ := openTestImage(t, false)
	tgt := openLoop(t, dev, im.Size())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := Write(ctx, im, tgt, Options{Progress: func(p Progress) {
		if p.Done > 40*mib {
			cancel()
		}
	}})
	var ie *InterruptedError
	if !errors.As(err, &ie) || res != nil {
		t.Fatalf("result %v, error %v", res, err)
	}
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, make([]byte, 4096)) {
		t.Error("the interrupted card still has a partition table")
	}
}

// TestLookupNotBlockDevice checks what a regular file as --device gives.
func TestLookupNotBlockDevice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.img")
	os.WriteFile(p, []byte("x"), 0o644)
	var sys System
	_, err := sys.Lookup(p)
	var nb *NotBlockDeviceError
	if !errors.As(err, &nb) || !strings.Contains(err.Error(), "--to-file") {
		t.Errorf("%v", err)
	}
	if _, err := sys.Lookup("/dev/null"); !errors.As(err, &nb) {
		t.Errorf("/dev/null: %v", err)
	}
}

// TestMountedLoopRefused mounts an ext4 on a loop device we created: the
// real mountinfo shows it, Check refuses, and an exclusive open fails too.
func TestMountedLoopRefused(t *testing.T) {
	dev, _ := newLoop(t, 64*mib)
	run(t, "mkfs.ext4", "-q", "-F", dev)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", dev, dir).CombinedOutput(); err != nil {
		t.Skipf("mount: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	var sys System
	d, err := sys.Lookup(dev)
	if err != nil {
		t.Fatal(err)
	}
	err = Check(d, Policy{})
	if err == nil || !strings.Contains(err.Error(), "mounted ("+dev+" on "+dir+")") {
		t.Fatalf("Check of a mounted loop device: %v", err)
	}
	d.Mounts = nil // pretend the check missed it: the kernel still refuses
	if _, err := sys.OpenDevice(d); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("exclusive open of a mounted device: %v", err)
	}
}

package ota

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"

	imgota "github.com/piimage/piimage/image/ota"
)

// TestApplyOnVFAT runs an update, its commit and a second update against
// a real vfat file system (loop-mounted, as /boot is on a node), then has
// fsck.fat check it: renames over existing files, syncfs and os.Root on
// the kernel's FAT driver. It needs root, mkfs.vfat and loop devices.
func TestApplyOnVFAT(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop device")
	}
	for _, tool := range []string{"mkfs.vfat", "fsck.fat", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "boot.fat")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.vfat", "-F", "32", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v %s", err, out)
	}
	mnt := filepath.Join(dir, "boot")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-o", "loop", "-t", "vfat", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount vfat here: %v %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount: %v %s", err, out)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)

	key := testKey(1)
	v1 := makeRelease(t, "v1", "k", key, nil)
	v2 := makeRelease(t, "v2", "k", key, nil)
	v3 := makeRelease(t, "v3", "k3", key, nil)
	// The card as built: slot a and config.txt, written through the mount.
	s := newCardState(t, v1, nil)
	for name := range s.boot.dirs {
		os.MkdirAll(filepath.Join(mnt, name), 0o755)
	}
	for name, data := range s.boot.files {
		if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	roots := map[string]string{}
	for slot, data := range s.devs {
		roots[slot] = filepath.Join(dir, "root-"+slot)
		os.WriteFile(roots[slot], data, 0o644)
	}
	d, err := NewOSDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	agent := func(booted string) *Agent {
		return &Agent{
			Boot: d, Board: "pi3", Booted: booted, DiskID: testDiskID, Keys: []ed25519.PublicKey{pub(key)},
			Root: func(slot string) (Device, error) { return OpenFileDevice(roots[slot]) },
			Log:  slog.New(slog.DiscardHandler),
		}
	}
	a := agent("a")
	if _, err := a.Apply(context.Background(), bytes.NewReader(v2.payload(t, nil)), nil); err != nil {
		t.Fatal(err)
	}
	b := agent("b")
	dec, tr, _, err := b.OnBoot()
	if dec != InTrial || err != nil {
		t.Fatalf("OnBoot = %v, %v", dec, err)
	}
	if err := b.Commit(*tr); err != nil {
		t.Fatal(err)
	}
	// v3 into slot a, over v1's files.
	if _, err := b.Apply(context.Background(), bytes.NewReader(v3.payload(t, nil)), nil); err != nil {
		t.Fatal(err)
	}
	for _, slot := range []string{"a", "b"} {
		if _, err := VerifySlot(d, func(s string) (Device, error) { return OpenFileDevice(roots[s]) }, slot); err != nil {
			t.Errorf("slot %s: %v", slot, err)
		}
	}
	cfg, _ := d.ReadFile(ConfigFile)
	if s, _ := imgota.ConfigSlot(string(cfg)); s != "a" {
		t.Errorf("config.txt boots %q, want the trial slot a", s)
	}
	if _, err := os.Stat(path.Join(mnt, "slot-a", "vmlinuz"+tempSuffix)); err == nil {
		t.Error("a temporary file is left")
	}
	unmount()
	if out, err := exec.Command("fsck.fat", "-n", img).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat: %v\n%s", err, out)
	}
}

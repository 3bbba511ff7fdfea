package otaimage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/image"
	imgota "github.com/piimage/piimage/image/ota"
)

var modTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testImage writes a small image the way builds lay it out: slot-a with
// a kernel, overlays, release.json, cmdline.txt and empty manifest files.
func testImage(t testing.TB, dir, version string) string {
	t.Helper()
	cfg := "os_prefix=slot-a/\nkernel=vmlinuz\n"
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
	boot := fstest.MapFS{
		"config.txt":                f(cfg),
		"tryboot.txt":               f(cfg),
		"node.yaml":                 f("hostname: x\n"),
		"slot-a/vmlinuz":            f(strings.Repeat("kernel ", 5000)),
		"slot-a/overlays/a.dtbo":    f("overlay"),
		"slot-a/cmdline.txt":        f("console=ttyS0 root=PARTUUID=0a0b0c0d-02 ro\n"),
		"slot-a/release.json":       f(`{"version":"` + version + `","board":"pi3","built":"2026-01-01T00:00:00Z"}` + "\n"),
		"slot-a/" + "manifest.json": {Mode: 0o644},
		"slot-a/manifest.sig":       {Mode: 0o644},
		"slot-b":                    {Mode: fs.ModeDir | 0o755},
	}
	root := fstest.MapFS{"init": {Data: []byte("#!init " + version), Mode: 0o755}}
	data := fstest.MapFS{"piimage": {Mode: fs.ModeDir | 0o700}}
	p := filepath.Join(dir, version+".img")
	_, err := image.Write(context.Background(), p, &image.Plan{
		Layout: image.Layout{DiskID: 0x0a0b0c0d}, Boot: boot, Root: root, Data: data, ModTime: modTime, BootVolumeID: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
}

func open(t *testing.T, p string) *Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	img, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestSignVerifyPayload(t *testing.T) {
	dir := t.TempDir()
	p := testImage(t, dir, "v1")
	if img := open(t, p); img.Manifest != nil || img.Slot != "a" {
		t.Fatalf("unsigned image: slot %s, manifest %v", img.Slot, img.Manifest)
	}
	m, err := Sign(p, key(1), modTime)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "v1" || m.Board != "pi3" || len(m.Files) != 3 || m.Root.Size%4096 != 0 || m.Cmdline != "console=ttyS0 root=PARTUUID=0a0b0c0d-02 ro" {
		t.Errorf("manifest = %+v", m)
	}
	if got := []string{m.Files[0].Path, m.Files[1].Path, m.Files[2].Path}; strings.Join(got, " ") != "overlays/a.dtbo release.json vmlinuz" {
		t.Errorf("files %v", got)
	}
	img := open(t, p)
	pub1 := key(1).Public().(ed25519.PublicKey)
	if id, err := img.Verify([]ed25519.PublicKey{pub1}); err != nil || id != imgota.KeyID(pub1) {
		t.Fatalf("Verify = %q, %v", id, err)
	}
	if _, err := img.Verify([]ed25519.PublicKey{key(2).Public().(ed25519.PublicKey)}); !errors.Is(err, imgota.ErrBadSignature) {
		t.Errorf("Verify with another key = %v", err)
	}
	if _, err := exec.LookPath("fsck.fat"); err == nil {
		boot := filepath.Join(dir, "boot.fat")
		if out, err := exec.Command("dd", "if="+p, "of="+boot, "bs=1M", "skip=4", "count=256", "status=none").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v %s", err, out)
		}
		if out, err := exec.Command("fsck.fat", "-n", boot).CombinedOutput(); err != nil {
			t.Errorf("fsck.fat after signing: %v\n%s", err, out)
		}
	}

	// The payload reads back as the manifest says.
	var buf bytes.Buffer
	sent, err := img.WritePayload(&buf, func(d imgota.Digest) bool { return d == m.Files[2].SHA256 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.PayloadSize(func(d imgota.Digest) bool { return d == m.Files[2].SHA256 }, nil); sent != want || sent != m.TotalSize()-m.Files[2].Size {
		t.Errorf("sent %d, PayloadSize %d, want %d", sent, want, m.TotalSize()-m.Files[2].Size)
	}
	r, err := imgota.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imgota.Verify([]ed25519.PublicKey{pub1}, r.ManifestBytes, r.Signature); err != nil {
		t.Fatal(err)
	}
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Path == "vmlinuz" && e.Inline {
			t.Error("the kernel the node has was sent")
		}
		io.Copy(io.Discard, e.Data)
	}

	// Against a base with the same root, the root costs nothing.
	root, _ := img.rootReader("a")
	base, err := imgota.ChunkHashes(root, m.Root.Size)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := img.PayloadSize(nil, base); err != nil || n != m.TotalSize()-m.Root.Size {
		t.Errorf("PayloadSize against the same root = %d, %v; want %d", n, err, m.TotalSize()-m.Root.Size)
	}
	if sent, err := img.WritePayload(io.Discard, nil, base); err != nil || sent != m.TotalSize()-m.Root.Size {
		t.Errorf("WritePayload against the same root sent %d, %v", sent, err)
	}

	// Re-signing with another key replaces the signature.
	if _, err := Sign(p, key(2), modTime); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, p).Verify([]ed25519.PublicKey{key(2).Public().(ed25519.PublicKey)}); err != nil {
		t.Errorf("after re-signing: %v", err)
	}
}

func TestVerifyDetectsChanges(t *testing.T) {
	dir := t.TempDir()
	p := testImage(t, dir, "v1")
	if _, err := Sign(p, key(1), modTime); err != nil {
		t.Fatal(err)
	}
	// Change one byte of the root filesystem.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := image.Layout{}.Extents()
	b := make([]byte, 1)
	f.ReadAt(b, ext[1].Offset+200)
	b[0] ^= 0xff
	f.WriteAt(b, ext[1].Offset+200)
	f.Close()
	if _, err := open(t, p).Verify([]ed25519.PublicKey{key(1).Public().(ed25519.PublicKey)}); err == nil || !strings.Contains(err.Error(), "differ from its signed manifest") {
		t.Errorf("Verify after a change = %v", err)
	}
}

func TestUnsignedPayload(t *testing.T) {
	p := testImage(t, t.TempDir(), "v1")
	if _, err := open(t, p).WritePayload(io.Discard, nil, nil); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("WritePayload of an unsigned image = %v", err)
	}
}

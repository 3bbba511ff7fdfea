package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piimage/piimage/image"
)

const srcTree = "../../.."

// buildRole builds the reference cluster's node of role into dir.
func buildRole(t *testing.T, role, out string, extra ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := append([]string{"build", "--role", role, "--cluster", srcTree + "/overlays", "--out", out, "--src", srcTree}, extra...)
	if err := Run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("piimage %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestBuiltImageIsReadByLinuxTools checks every partition of a built image
// with independent tools: sfdisk, mtools, fsck.fat, unsquashfs, e2fsck.
func TestBuiltImageIsReadByLinuxTools(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "lbmaster.img")
	buildRole(t, "lbmaster", img)
	m := readMBR(t, img)
	ext, _ := image.Layout{}.Extents()

	t.Run("sfdisk", func(t *testing.T) {
		needTool(t, "sfdisk")
		out := strings.Join(strings.Fields(run(t, "sfdisk", "-d", img)), " ")
		for _, want := range []string{
			"label: dos",
			fmt.Sprintf("label-id: 0x%08x", m.DiskID),
			fmt.Sprintf("start= %d, size= %d, type=c, bootable", ext[0].Offset/512, ext[0].Size/512),
			fmt.Sprintf("start= %d, size= %d, type=83", ext[1].Offset/512, ext[1].Size/512),
			fmt.Sprintf("start= %d, size= %d, type=83", ext[3].Offset/512, ext[3].Size/512),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("sfdisk -d lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("mtools", func(t *testing.T) {
		needTool(t, "mdir")
		at := fmt.Sprintf("%s@@%d", img, ext[0].Offset)
		root := run(t, "mdir", "-b", "-i", at, "::/")
		for _, want := range []string{"bootcode.bin", "start.elf", "fixup.dat", "config.txt", "tryboot.txt", "node.yaml", "slot-a", "slot-b"} {
			if !strings.Contains(strings.ToLower(root), want) {
				t.Errorf("mdir ::/ lacks %s:\n%s", want, root)
			}
		}
		slot := run(t, "mdir", "-b", "-i", at, "::/slot-a")
		for _, want := range []string{"vmlinuz", "cmdline.txt", "bcm2710-rpi-3-b.dtb", "overlays"} {
			if !strings.Contains(slot, want) {
				t.Errorf("mdir ::/slot-a lacks %s:\n%s", want, slot)
			}
		}
		cfg := run(t, "mtype", "-i", at, "::/config.txt")
		for _, want := range []string{"os_prefix=slot-a/", "kernel=vmlinuz", "arm_64bit=1"} {
			if !strings.Contains(cfg, want) {
				t.Errorf("config.txt lacks %q:\n%s", want, cfg)
			}
		}
		cmdline := run(t, "mtype", "-i", at, "::/slot-a/cmdline.txt")
		if want := "root=PARTUUID=" + image.PartUUID(m.DiskID, 2); !strings.Contains(cmdline, want) {
			t.Errorf("cmdline.txt = %q, want %s", cmdline, want)
		}
		overlay := run(t, "mtype", "-i", at, "::/node.yaml")
		orig, _ := os.ReadFile(srcTree + "/overlays/lbmaster.yaml")
		if strings.ReplaceAll(overlay, "\r", "") != string(orig) {
			t.Errorf("node.yaml on the card differs from overlays/lbmaster.yaml")
		}
	})
	t.Run("fsck.fat", func(t *testing.T) {
		needTool(t, "fsck.fat")
		part := extract(t, img, ext[0])
		run(t, "fsck.fat", "-n", part)
	})
	t.Run("unsquashfs", func(t *testing.T) {
		needTool(t, "unsquashfs")
		part := extract(t, img, ext[1])
		out := run(t, "unsquashfs", "-lln", part)
		for _, want := range []string{"squashfs-root/init", "squashfs-root/piimage/release.json", "squashfs-root/proc", "squashfs-root/data"} {
			if !strings.Contains(out, want) {
				t.Errorf("unsquashfs -lln lacks %s:\n%s", want, out)
			}
		}
		if !strings.Contains(out, "-rwxr-xr-x 0/0") {
			t.Errorf("init is not an executable owned by root:\n%s", out)
		}
	})
	t.Run("e2fsck", func(t *testing.T) {
		needTool(t, "e2fsck")
		part := extract(t, img, ext[3])
		run(t, "e2fsck", "-fn", part)
	})
	t.Run("inspect", func(t *testing.T) {
		var out bytes.Buffer
		if err := Run(context.Background(), []string{"inspect", img}, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"root slot A", "squashfs gzip", "ext4", "* slot-a: version", "slot-b: empty", "board pi3", "gokrazy/kernel.rpi@", "hostname: lbmaster"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("inspect output lacks %q:\n%s", want, out.String())
			}
		}
	})
}

func TestBuildIsReproducible(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	buildRole(t, "web", a, "--time", "2026-05-01T00:00:00Z", "--version", "test")
	buildRole(t, "web", b, "--time", "2026-05-01T00:00:00Z", "--version", "test")
	if sha(t, a) != sha(t, b) {
		t.Fatal("two builds of the same inputs differ")
	}
	// A web node carries the cluster's mirror secret, readable by root only.
	needTool(t, "debugfs")
	ext, _ := image.Layout{}.Extents()
	data := extract(t, a, ext[image.PartData-1])
	out := run(t, "debugfs", "-R", "stat /mirror/secret", data)
	if !strings.Contains(out, "Mode:  0600") && !strings.Contains(out, "Mode:  00600") {
		t.Errorf("/mirror/secret on the data partition:\n%s", out)
	}
}

func readMBR(t *testing.T, img string) *image.MBR {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	m, err := image.ParseMBR(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func extract(t *testing.T, img string, e image.Extent) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "part")
	g, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// Copy sparsely: most of a partition is zeros.
	buf := make([]byte, 1<<20)
	zero := make([]byte, 1<<20)
	for off := int64(0); off < e.Size; off += int64(len(buf)) {
		n, err := f.ReadAt(buf, e.Offset+off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := g.WriteAt(buf[:n], off); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := g.Truncate(e.Size); err != nil {
		t.Fatal(err)
	}
	return out
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBuildAllAndBoards(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"build", "--all", "--cluster", srcTree + "/overlays", "--out-dir", dir, "--src", srcTree}, &stdout, &stderr); err != nil {
		t.Fatalf("build --all: %v\n%s", err, stderr.String())
	}
	for _, h := range []string{"lbmaster", "lbbackup", "web01", "web02"} {
		if _, err := os.Stat(filepath.Join(dir, h+".img")); err != nil {
			t.Errorf("build --all did not write %s.img: %v", h, err)
		}
	}

	// Every board builds (boards_fat_test.go checks their files); an
	// unknown one is refused with the list of boards.
	err := Run(context.Background(), []string{"build", "--role", "web", "--board", "pi5", "--cluster", srcTree + "/overlays", "--out", filepath.Join(dir, "pi5.img"), "--src", srcTree}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "pi2, pi3, pi4") {
		t.Errorf("--board pi5: %v, want an error listing the boards", err)
	}

	needTool(t, "mdir")
	pi4 := filepath.Join(dir, "pi4.img")
	buildRole(t, "web", pi4, "--board", "pi4")
	at := fmt.Sprintf("%s@@%d", pi4, image.Align)
	root := strings.ToLower(run(t, "mdir", "-b", "-i", at, "::/"))
	if !strings.Contains(root, "start4.elf") || !strings.Contains(root, "fixup4.dat") || strings.Contains(root, "bootcode.bin") {
		t.Errorf("pi4 boot partition has the wrong firmware:\n%s", root)
	}
	if slot := run(t, "mdir", "-b", "-i", at, "::/slot-a"); !strings.Contains(slot, "bcm2711-rpi-4-b.dtb") {
		t.Errorf("pi4 slot lacks bcm2711-rpi-4-b.dtb:\n%s", slot)
	}
}

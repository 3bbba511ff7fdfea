package rootfs

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/boards"
)

var initramfsTime = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func fakeModules(t *testing.T, names ...string) []boards.KernelModule {
	t.Helper()
	dir := t.TempDir()
	var mods []boards.KernelModule
	for _, n := range names {
		p := filepath.Join(dir, strings.ReplaceAll(n, "_", "-")+".ko")
		if err := os.WriteFile(p, []byte("\x7fELF module "+n), 0o644); err != nil {
			t.Fatal(err)
		}
		mods = append(mods, boards.KernelModule{Name: n, Path: p})
	}
	return mods
}

// TestInitramfsContents lists the archive with GNU cpio: the init, the
// console node, the mount points, the modules and the load list in order.
func TestInitramfsContents(t *testing.T) {
	mods := fakeModules(t, "usbcore", "dwc2", "sdhci_iproc")
	rd, err := Initramfs([]byte("ELF init"), mods, initramfsTime)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Initramfs([]byte("ELF init"), mods, initramfsTime)
	if !bytes.Equal(rd, again) {
		t.Error("two initramfs builds of the same inputs differ")
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed (Debian package cpio)")
	}
	dir := t.TempDir()
	arc := filepath.Join(dir, "initramfs.cpio")
	os.WriteFile(arc, rd, 0o644)
	cmd := exec.Command("cpio", "-itv", "--quiet", "--numeric-uid-gid", "-F", arc)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	for _, want := range []string{
		"crw-------   1 0        0          5,   1 May  1  2026 dev/console",
		"-rwxr-xr-x   1 0        0               8 May  1  2026 init",
		"drwxr-xr-x   2 0        0               0 May  1  2026 proc",
		"drwxr-xr-x   2 0        0               0 May  1  2026 sys",
		"lib/modules/sdhci_iproc.ko",
		"lib/modules/piimage.load",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("initramfs lacks %q:\n%s", want, out)
		}
	}
	x := exec.Command("cpio", "-id", "--quiet", "-F", arc, "lib/modules/piimage.load")
	x.Dir = dir
	if b, err := x.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, b)
	}
	list, _ := os.ReadFile(filepath.Join(dir, InitramfsLoadList))
	var names []string
	for _, l := range strings.Split(string(list), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	if got := strings.Join(names, " "); got != "usbcore.ko dwc2.ko sdhci_iproc.ko" {
		t.Errorf("load list %q", got)
	}
}

func TestInitramfsRefusesBadModules(t *testing.T) {
	mods := fakeModules(t, "a")
	if _, err := Initramfs(nil, append(mods, mods[0]), initramfsTime); err == nil {
		t.Error("a module listed twice was accepted")
	}
	if _, err := Initramfs(nil, []boards.KernelModule{{Name: "x", Path: "/nonexistent/x.ko"}}, initramfsTime); err == nil || !strings.Contains(err.Error(), "kernel module x") {
		t.Errorf("missing module file: %v", err)
	}
}

// TestInitramfsPathsMatchTheInit: the init (services/node, which must not
// import the builder) reads the modules and the load list from the same
// paths the builder writes.
func TestInitramfsPathsMatchTheInit(t *testing.T) {
	src, err := os.ReadFile("../services/node/modules_linux.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`initramfsModules  = "/` + InitramfsModulesDir + `"`, `initramfsLoadList = "/` + InitramfsLoadList + `"`} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("services/node/modules_linux.go lacks %s", want)
		}
	}
}

// TestBootTreeRefusesAKernelForTheWrongArch: a 32-bit board handed an
// arm64 kernel (and the other way round) fails before anything is written,
// with both architectures in the error.
func TestBootTreeRefusesAKernelForTheWrongArch(t *testing.T) {
	dir := t.TempDir()
	arm64 := make([]byte, 64)
	copy(arm64[56:], "ARM\x64")
	arm := make([]byte, 64)
	binary.LittleEndian.PutUint32(arm[0x24:], 0x016f2818)
	os.WriteFile(filepath.Join(dir, "arm64"), arm64, 0o644)
	os.WriteFile(filepath.Join(dir, "arm"), arm, 0o644)
	for _, f := range []string{"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat", "bcm2836-rpi-2-b.dtb", "bcm2711-rpi-4-b.dtb"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
	}
	pi2, err := boards.Get("pi2")
	if err != nil {
		t.Fatal(err)
	}
	pi4, _ := boards.Get("pi4")
	pi4.DeviceTrees = []string{"bcm2711-rpi-4-b.dtb"}
	tests := []struct {
		board  boards.Board
		kernel string
		err    string
	}{
		{pi2, "arm64", "kernel is for arm64, but the board's init is built for arm"},
		{pi4, "arm", "kernel is for arm, but the board's init is built for arm64"},
		{pi2, "arm", ""},
	}
	for _, tt := range tests {
		k := &boards.Kernel{Source: "test-kernel", Image: filepath.Join(dir, tt.kernel), DTBDir: dir, Modules: fakeModules(t, "squashfs")}
		tree, err := bootTree(Options{Board: tt.board, ModTime: initramfsTime}, k, dir, 0x1a2b3c4d, []byte("{}"), []byte("init"))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "test-kernel") {
				t.Errorf("%s with an %s kernel: %v, want %q", tt.board.Name, tt.kernel, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.board.Name, err)
		}
		// The pi2 slot gets the initramfs, the upstream device tree and
		// the PL011 console.
		for _, f := range []string{"slot-a/vmlinuz", "slot-a/initramfs.cpio", "slot-a/bcm2836-rpi-2-b.dtb", "bootcode.bin", "config.txt"} {
			if _, err := fs.Stat(tree, f); err != nil {
				t.Errorf("pi2 boot tree lacks %s", f)
			}
		}
		cmdline, _ := fs.ReadFile(tree, "slot-a/cmdline.txt")
		if !strings.Contains(string(cmdline), "console=ttyAMA0,115200 console=tty1 root=PARTUUID=1a2b3c4d-02") {
			t.Errorf("pi2 cmdline.txt = %q", cmdline)
		}
	}
}

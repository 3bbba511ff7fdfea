package cli

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/flash"
)

// flashImage builds a small image shaped like piimage build's for the
// reference overlay file (lbmaster.yaml, web01.yaml) without compiling the
// init: the overlay on the FAT and as the data partition's last good copy,
// a web root on web nodes.
func flashImage(t *testing.T, overlayFile string) string {
	t.Helper()
	ov, err := os.ReadFile(filepath.Join(srcTree, "overlays", overlayFile))
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 600_000)
	rand.NewChaCha8([32]byte{1}).Read(junk)
	boot := fstest.MapFS{
		"config.txt":           {Data: []byte("os_prefix=slot-a/\n")},
		"node.yaml":            {Data: ov},
		"start.elf":            {Data: junk},
		"slot-a/cmdline.txt":   {Data: []byte("root=PARTUUID=0badcafe-02\n")},
		"slot-a/release.json":  {Data: []byte(`{"version":"test","board":"pi3"}` + "\n")},
		"slot-a/kernel8.img":   {Data: junk[:300_000]},
		"slot-a/bcm2710-3.dtb": {Data: junk[:30_000]},
	}
	data := fstest.MapFS{
		".":                      {Mode: fs.ModeDir | 0o755},
		"piimage":                {Mode: fs.ModeDir | 0o700},
		"piimage/last-good.yaml": {Data: ov, Mode: 0o600},
	}
	if strings.HasPrefix(overlayFile, "web") {
		data["www/index.html"] = &fstest.MapFile{Data: []byte("<h1>hello</h1>\n"), Mode: 0o644}
	}
	p := &image.Plan{
		Layout:  image.Layout{DiskID: 0x0badcafe, TotalSize: 120 * image.MiB, BootSize: 64 * image.MiB, RootSize: 8 * image.MiB},
		Boot:    boot,
		Root:    fstest.MapFS{"init": {Data: junk[:100_000], Mode: 0o755}},
		Data:    data,
		ModTime: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
	}
	path := filepath.Join(t.TempDir(), strings.TrimSuffix(overlayFile, ".yaml")+".img")
	if _, err := image.Write(context.Background(), path, p); err != nil {
		t.Fatal(err)
	}
	return path
}

// runFlashTest runs piimage flash in-process.
func runFlashTest(ctx context.Context, env flashEnv, args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = runFlash(ctx, args, &o, &e, env)
	return o.String(), e.String(), err
}

// toolOut runs a tool and returns its standard output.
func toolOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	needTool(t, name)
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s%s", name, args, err, out, stderr.Bytes())
	}
	return string(out)
}

// cardPart copies partition n of a card (file or device) to a temp file.
func cardPart(t *testing.T, card string, n int) string {
	t.Helper()
	b, err := os.ReadFile(card)
	if err != nil {
		t.Fatal(err)
	}
	m, err := image.ParseMBR(b[:512])
	if err != nil {
		t.Fatal(err)
	}
	p := m.Partitions[n-1]
	out := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(out, b[int64(p.Start)*512:int64(p.Start+p.Sectors)*512], 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// cardOverlays returns node.yaml from the FAT (mtype, after fsck.fat -n)
// and the last good copy from the ext4 (debugfs, after e2fsck -fn).
func cardOverlays(t *testing.T, card string) (fat, lastGood string) {
	t.Helper()
	p1 := cardPart(t, card, 1)
	needTool(t, "fsck.fat")
	if out, err := exec.Command("fsck.fat", "-n", p1).CombinedOutput(); err != nil {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
	fat = toolOut(t, "mtype", "-i", p1, "::/node.yaml")
	p4 := cardPart(t, card, 4)
	toolOut(t, "e2fsck", "-fn", p4)
	lastGood = toolOut(t, "debugfs", "-R", "cat /piimage/last-good.yaml", p4)
	return fat, lastGood
}

// TestFlashToFileOverlay makes another node's card from a role image.
func TestFlashToFileOverlay(t *testing.T) {
	img := flashImage(t, "lbmaster.yaml")
	backup := filepath.Join(srcTree, "overlays", "lbbackup.yaml")
	want, _ := os.ReadFile(backup)
	out := filepath.Join(t.TempDir(), "card.img")
	stdout, stderr, err := runFlashTest(context.Background(), flashEnv{}, img, "--to-file", out, "--overlay", backup)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "flashed ") || !strings.Contains(stdout, "(lbbackup)") {
		t.Errorf("stdout: %q", stdout)
	}
	fat, lastGood := cardOverlays(t, out)
	if fat != string(want) || lastGood != string(want) {
		t.Errorf("card overlays differ from lbbackup.yaml:\nFAT:\n%s\nlast good:\n%s", fat, lastGood)
	}
}

// TestFlashToFileHostname derives a node with --hostname and --address:
// only those two values change, comments stay; on a web image the last good
// copy is left for the init and a note says so.
func TestFlashToFileHostname(t *testing.T) {
	img := flashImage(t, "web01.yaml")
	orig, _ := os.ReadFile(filepath.Join(srcTree, "overlays", "web01.yaml"))
	out := filepath.Join(t.TempDir(), "card.img")
	_, stderr, err := runFlashTest(context.Background(), flashEnv{}, img, "--to-file", out, "--hostname", "web03", "--address", "192.168.1.12/24")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "first boot") {
		t.Errorf("no note about the last good copy: %q", stderr)
	}
	fat, lastGood := cardOverlays(t, out)
	want := strings.Replace(strings.Replace(string(orig), "hostname: web01", "hostname: web03", 1),
		"address: 192.168.1.10/24", "address: 192.168.1.12/24", 1)
	if fat != want {
		t.Errorf("node.yaml:\n%s\nwant:\n%s", fat, want)
	}
	if lastGood != string(orig) {
		t.Errorf("web image's last good copy changed")
	}
}

// TestEditOverlay checks the in-place YAML edits.
func TestEditOverlay(t *testing.T) {
	tests := []struct {
		in, host, addr, want string
	}{
		{"hostname: a # c\nrole: web\n", "b", "", "hostname: b # c\nrole: web\n"},
		{"hostname: \"a\"\n", "bb", "", "hostname: bb\n"},
		{"hostname: 'a'  # x\n", "bb", "", "hostname: bb  # x\n"},
		{"interfaces:\n  eth0: {address: 10.0.0.1/8}\n", "", "10.0.0.2/8", "interfaces:\n  eth0: {address: 10.0.0.2/8}\n"},
		{"# top\nhostname: x\ninterfaces:\n  eth0:\n    address: 1.2.3.4/24 # eth\n", "y", "1.2.3.5/24",
			"# top\nhostname: y\ninterfaces:\n  eth0:\n    address: 1.2.3.5/24 # eth\n"},
	}
	for _, tc := range tests {
		got, err := editOverlay([]byte(tc.in), tc.host, tc.addr)
		if err != nil || string(got) != tc.want {
			t.Errorf("editOverlay(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []struct{ in, host, addr string }{
		{"role: web\n", "x", ""},
		{"hostname: x\n", "", "1.2.3.4/24"},
		{"hostname: x\n", "", "1.2.3.4"},
	} {
		if _, err := editOverlay([]byte(bad.in), bad.host, bad.addr); err == nil {
			t.Errorf("editOverlay(%q, %q, %q) succeeded", bad.in, bad.host, bad.addr)
		}
	}
}

// TestFlashRefusals checks usage mistakes and refusals before writing.
func TestFlashRefusals(t *testing.T) {
	img := flashImage(t, "web01.yaml")
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists.img")
	os.WriteFile(existing, []byte("keep"), 0o644)
	badOverlay := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badOverlay, []byte("hostname: Bad_Name\nrole: web\n"), 0o644)
	tests := []struct {
		name  string
		args  []string
		usage bool
		says  string
	}{
		{"no image", []string{"--to-file", filepath.Join(dir, "a")}, true, "name one image"},
		{"no target", []string{img}, true, "exactly one of --device"},
		{"both targets", []string{img, "--device", "/dev/null", "--to-file", "x"}, true, "exactly one of --device"},
		{"grow a file", []string{img, "--to-file", filepath.Join(dir, "b"), "--grow"}, true, "no size to fill"},
		{"bad max size", []string{img, "--device", "/dev/null", "--max-size", "lots"}, true, "--max-size"},
		{"regular file as device", []string{img, "--device", existing}, false, "use --to-file"},
		{"macOS path", []string{img, "--device", "/dev/rdisk2"}, false, "macOS"},
		{"existing file", []string{img, "--to-file", existing}, false, "already exists"},
		{"invalid overlay", []string{img, "--to-file", filepath.Join(dir, "c"), "--overlay", badOverlay}, false, "bad.yaml:1"},
		{"invalid hostname", []string{img, "--to-file", filepath.Join(dir, "d"), "--hostname", "Bad_Name"}, false, "hostname"},
		{"bad address", []string{img, "--to-file", filepath.Join(dir, "e"), "--address", "10.0.0.1"}, true, "prefix length"},
		{"other role", []string{img, "--to-file", filepath.Join(dir, "f"), "--overlay", filepath.Join(srcTree, "overlays", "lbmaster.yaml")}, false, "built for role web"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runFlashTest(context.Background(), flashEnv{}, tc.args...)
			if err == nil {
				t.Fatal("flash succeeded")
			}
			var u *usageError
			if errors.As(err, &u) != tc.usage {
				t.Errorf("usage error %v, want %v: %v", !tc.usage, tc.usage, err)
			}
			if !strings.Contains(err.Error()+stderr, tc.says) {
				t.Errorf("error does not say %q: %v", tc.says, err)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Error("existing file overwritten")
	}
	for _, n := range []string{"a", "c", "d", "e", "f"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("refused flash left a file %s", n)
		}
	}
}

// TestFlashInterrupted cancels a flash to a file: non-zero exit, no
// success line, no partial file left.
func TestFlashInterrupted(t *testing.T) {
	img := flashImage(t, "lbmaster.yaml")
	out := filepath.Join(t.TempDir(), "card.img")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stdout, _, err := runFlashTest(ctx, flashEnv{}, img, "--to-file", out)
	var ie *flash.InterruptedError
	if !errors.As(err, &ie) || ExitCode(err) == 0 || strings.Contains(stdout, "flashed") {
		t.Fatalf("err %v, stdout %q", err, stdout)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("partial copy left behind")
	}
}

// TestFlashList lists the disks of a fake system.
func TestFlashList(t *testing.T) {
	root := t.TempDir()
	mk := func(p, s string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(s+"\n"), 0o644)
	}
	ln := func(p, target string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.Symlink(target, filepath.Join(root, p))
	}
	for _, d := range []struct{ name, dev, bus, size, removable, model string }{
		{"sda", "8:0", "pci0000:00/ata1", "976773168", "0", "Samsung SSD"},
		{"sdb", "8:16", "pci0000:00/usb1", "62333952", "1", "SD Reader"},
	} {
		dir := "sys/devices/" + d.bus + "/block/" + d.name
		mk(dir+"/dev", d.dev)
		mk(dir+"/size", d.size)
		mk(dir+"/removable", d.removable)
		mk(dir+"/device/model", d.model)
		ln("sys/block/"+d.name, "../devices/"+d.bus+"/block/"+d.name)
		ln("sys/class/block/"+d.name, "../../devices/"+d.bus+"/block/"+d.name)
		ln("sys/dev/block/"+d.dev, "../../devices/"+d.bus+"/block/"+d.name)
	}
	mk("sys/devices/pci0000:00/ata1/block/sda/sda1/partition", "1")
	mk("sys/devices/pci0000:00/ata1/block/sda/sda1/dev", "8:1")
	ln("sys/class/block/sda1", "../../devices/pci0000:00/ata1/block/sda/sda1")
	ln("sys/dev/block/8:1", "../../devices/pci0000:00/ata1/block/sda/sda1")
	mk("mountinfo", "27 1 8:1 / / rw - ext4 /dev/sda1 rw")
	mk("swaps", "Filename Type Size Used Priority")
	env := flashEnv{sys: flash.System{SysRoot: filepath.Join(root, "sys"), MountInfo: filepath.Join(root, "mountinfo"), Swaps: filepath.Join(root, "swaps")}}
	stdout, _, err := runFlashTest(context.Background(), env, "--list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("--list:\n%s", stdout)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`^DEVICE +SIZE +MODEL +REMOVABLE +MOUNTED +FLASH\?$`),
		regexp.MustCompile(`^/dev/sda +500\.1 GB +Samsung SSD +no \(removable=0\) +/dev/sda1 on / +no: it holds the running system`),
		regexp.MustCompile(`^/dev/sdb +31\.9 GB +SD Reader +yes \(removable=1\) +no +yes$`),
	} {
		found := false
		for _, l := range lines {
			found = found || want.MatchString(l)
		}
		if !found {
			t.Errorf("no line matches %s in:\n%s", want, stdout)
		}
	}
}

// cliLoop attaches a loop device to a new zero-filled file of size bytes,
// checking that the device losetup printed is a loop device over our file.
func cliLoop(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
	needTool(t, "losetup")
	file := filepath.Join(t.TempDir(), "card.img")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", file).Output()
	if err != nil {
		t.Skipf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^/dev/loop[0-9]+$`).MatchString(dev) {
		t.Fatalf("losetup printed %q", dev)
	}
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	back, err := exec.Command("losetup", "--list", "--noheadings", "--output", "BACK-FILE", dev).Output()
	if err != nil || strings.TrimSpace(string(back)) != file {
		t.Fatalf("%s is backed by %q, not %s", dev, back, file)
	}
	return dev
}

// TestFlashDevice flashes loop devices: confirmation asked and refused,
// confirmation given, --yes with --grow, and --grow refused on a web image.
func TestFlashDevice(t *testing.T) {
	lb := flashImage(t, "lbmaster.yaml")
	dev := cliLoop(t, 256*image.MiB)

	if _, _, err := runFlashTest(context.Background(), flashEnv{}, lb, "--device", dev); err == nil || !strings.Contains(err.Error(), "pass --yes") {
		t.Errorf("no terminal, no --yes: %v", err)
	}
	env := flashEnv{stdin: strings.NewReader("no\n"), askTTY: true}
	_, stderr, err := runFlashTest(context.Background(), env, lb, "--device", dev)
	if err == nil || !strings.Contains(err.Error(), "not confirmed") || !strings.Contains(stderr, "About to ERASE "+dev) {
		t.Errorf("answer no: %v\n%s", err, stderr)
	}
	env.stdin = strings.NewReader("yes\n")
	stdout, stderr, err := runFlashTest(context.Background(), env, lb, "--device", dev, "--hostname", "lb9")
	if err != nil {
		t.Fatalf("answer yes: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "written and verified") {
		t.Errorf("stdout %q", stdout)
	}
	fat, lastGood := cardOverlays(t, dev)
	if !strings.Contains(fat, "hostname: lb9\n") || lastGood != fat {
		t.Errorf("FAT:\n%s\nlast good:\n%s", fat, lastGood)
	}

	if _, stderr, err := runFlashTest(context.Background(), flashEnv{}, lb, "--device", dev, "--yes", "--grow"); err != nil {
		t.Fatalf("--grow: %v\n%s", err, stderr)
	}
	fat, lastGood = cardOverlays(t, dev)
	if !strings.Contains(fat, "hostname: lbmaster\n") || lastGood != fat {
		t.Errorf("after --grow: FAT:\n%s\nlast good:\n%s", fat, lastGood)
	}
	sf := toolOut(t, "sfdisk", "--dump", dev)
	if !strings.Contains(sf, "size=      352256, type=83") {
		t.Errorf("data partition not grown to the card's end (172 MiB from 36 MiB):\n%s", sf)
	}

	web := flashImage(t, "web01.yaml")
	_, _, err = runFlashTest(context.Background(), flashEnv{}, web, "--device", dev, "--yes", "--grow")
	if err == nil || !strings.Contains(err.Error(), "cannot --grow") || !strings.Contains(err.Error(), "web root") {
		t.Errorf("--grow on a web image: %v", err)
	}
}

// TestFlashedCardBoots builds the QEMU test image, makes another node's
// card from it with flash --to-file --hostname, and boots the card: the node
// comes up with the new hostname, read from the boot partition's overlay.
func TestFlashedCardBoots(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "qemu-test.img")
	buildQEMUImage(t, img)
	card := filepath.Join(dir, "card.img")
	if _, stderr, err := runFlashTest(context.Background(), flashEnv{}, img, "--to-file", card, "--hostname", "qemu-clone"); err != nil {
		t.Fatalf("flash: %v\n%s", err, stderr)
	}
	s, _ := bootAndStatus(t, card)
	if s.Hostname != "qemu-clone" || s.Overlay.Source != "boot" || !hasAddress(s, "eth0", "10.0.2.15/24") {
		t.Errorf("status = %+v, want hostname qemu-clone from the boot overlay", s)
	}
}

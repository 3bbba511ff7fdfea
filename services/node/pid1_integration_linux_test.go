package node

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/piimage/piimage/services/admin"
)

// TestPID1InNamespaces boots cmd/init as PID 1 of new PID, mount and UTS
// namespaces inside a test network namespace, chrooted into a folder laid
// out like the squashfs root, from a disk image on a loop device (MBR with
// disk id 1a2b3c4d, FAT p1 with node.yaml, ext4 p4) and a kernel command
// line bound over /proc/cmdline. It checks the status from a client
// namespace, reboots through POST /reboot (in a PID namespace reboot(2)
// ends that namespace, not the machine), checks that both file systems
// were unmounted cleanly and the last good overlay saved, then boots again
// on a broken FAT overlay.
func TestPID1InNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"ip", "go", "unshare", "chroot", "losetup", "sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "debugfs", "e2fsck", "fsck.fat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	// The chroot sees the machine's devices through devtmpfs; never let a
	// test init open (and arm) a real watchdog.
	if _, err := os.Stat("/dev/watchdog"); err == nil {
		t.Skip("this machine has /dev/watchdog, which the init would arm")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc", "boot", "data", "piimage"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(root, "init"), "github.com/piimage/piimage/cmd/init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/init: %v\n%s", err, out)
	}
	writeFile(t, filepath.Join(root, "piimage", "release.json"), `{"version":"v0.0.1-test","board":"pi3","built":"2026-11-22","kernel":"k","firmware":"f"}`)
	writeFile(t, filepath.Join(root, "cmdline"), "console=ttyS0,115200 console=tty1 root=PARTUUID=1a2b3c4d-03 rootfstype=squashfs ro rootwait init=/init panic=10 oops=panic\n")
	_, p1, p4 := newBootDisk(t, dir)
	overlay := "hostname: p1test\nrole: lbmaster\ninterfaces:\n  eth0:\n    address: 10.77.0.2/24\n    gateway: 10.77.0.1\n" +
		"vip:\n  router_id: 77\n  priority: 101\n  address: 10.77.0.10/24\n"
	older := strings.Replace(overlay, "priority: 101", "priority: 90", 1)
	putFAT(t, dir, p1, overlay)
	// As the builder does: the same overlay on the data partition, here
	// an older one, so that an update of it shows.
	putExt4(t, dir, p4, "piimage/last-good.yaml", older)
	// This machine's kernel may lack vfat; then /boot does not mount and
	// every boot must come up on the data partition's copy.
	fs, _ := os.ReadFile("/proc/filesystems")
	hasVfat := strings.Contains(string(fs), "\tvfat\n")

	nodeNS, clientNS := newNetnsPair(t)
	client, local := clientIn(clientNS, 5*time.Second), clientIn(nodeNS, 5*time.Second)
	boot := func() *runningNode {
		return startCmd(t, "ip", "netns", "exec", nodeNS.Name, "unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--propagation", "private",
			"sh", "-c", `mount -t proc proc "$1/proc" && mount --bind "$1/cmdline" "$1/proc/cmdline" && exec chroot "$1" /init`, "sh", root)
	}
	reboot := func(n *runningNode) {
		t.Helper()
		resp, err := local.Post("http://127.0.0.1:9000/reboot", "", nil)
		if err != nil {
			t.Fatalf("POST /reboot: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("POST /reboot = %d", resp.StatusCode)
		}
		select {
		case err := <-n.done:
			n.done <- err
		case <-time.After(30 * time.Second):
			t.Fatalf("the node did not go down:\n%s", n.output())
		}
		if !strings.Contains(n.output(), "piimage: reboot\n") {
			t.Errorf("no reboot on the console:\n%s", n.output())
		}
	}
	checkStatus := func(st admin.Status, source, path, reason string) {
		t.Helper()
		if st.Hostname != "p1test" || st.Role != "lbmaster" || st.Slot != "b" || st.Version != "v0.0.1-test" || st.Board != "pi3" ||
			!hasAddress(st, "eth0", "10.77.0.2/24") {
			t.Errorf("status = %+v", st)
		}
		if st.Overlay.Source != source || st.Overlay.Path != path || !strings.Contains(st.Overlay.FallbackReason, reason) || (reason == "") != (st.Overlay.FallbackReason == "") {
			t.Errorf("overlay = %+v, want %s %s with reason %q", st.Overlay, source, path, reason)
		}
	}

	if !hasVfat {
		n := boot()
		n.waitOutput(t, "piimage: p1test up (overlay from last-good)")
		checkStatus(clientStatus(t, client), admin.SourceLastGood, "/data/piimage/last-good.yaml", "/boot/node.yaml")
		if !strings.Contains(n.output(), "mount the boot partition at /boot") {
			t.Errorf("the console does not say /boot failed:\n%s", n.output())
		}
		reboot(n)
		checkFilesystems(t, "", p4)
		t.Logf("no vfat in this kernel: only the data partition's path ran. Console:\n%s", n.output())
		return
	}

	// First boot: the FAT overlay is good and replaces the older copy.
	n := boot()
	n.waitOutput(t, "piimage: p1test up (overlay from boot)")
	checkStatus(clientStatus(t, client), admin.SourceBoot, "/boot/node.yaml", "")
	for _, want := range []string{"saved as the last good copy at /data/piimage/last-good.yaml", "not built into this image yet: balancer, vip"} {
		if !strings.Contains(n.output(), want) {
			t.Errorf("console lacks %q:\n%s", want, n.output())
		}
	}
	reboot(n)
	checkFilesystems(t, p1, p4)
	if out, err := exec.Command("debugfs", "-R", "cat /piimage/last-good.yaml", p4).Output(); err != nil || string(out) != overlay {
		t.Errorf("last good copy on p4 = %q, %v", out, err)
	}

	// Second boot: the FAT overlay is broken; the data partition's copy
	// takes over.
	putFAT(t, dir, p1, strings.Replace(overlay, "priority: 101", "priority: 101\n  prority: 3", 1))
	n = boot()
	n.waitOutput(t, "piimage: p1test up (overlay from last-good)")
	checkStatus(clientStatus(t, client), admin.SourceLastGood, "/data/piimage/last-good.yaml", "prority")
	reboot(n)
	checkFilesystems(t, p1, p4)
}

// putExt4 writes content at path (one folder deep) on an unmounted ext4.
func putExt4(t *testing.T, dir, part, path, content string) {
	t.Helper()
	src := filepath.Join(dir, "ext4-src")
	writeFile(t, src, content)
	for _, req := range []string{"mkdir " + filepath.Dir(path), "write " + src + " " + path} {
		if out, err := exec.Command("debugfs", "-w", "-R", req, part).CombinedOutput(); err != nil {
			t.Fatalf("debugfs %s: %v\n%s", req, err, out)
		}
	}
}

// Partitions of the test disk image, in 512-byte sectors.
var testParts = [4]struct{ start, size int64 }{{2048, 32768}, {34816, 8192}, {43008, 8192}, {51200, 47104}}

// newBootDisk makes a 48 MiB disk image like the card's (p1 FAT, p2 and
// p3 root slots, p4 ext4) on a loop device that the test detaches. It
// returns the loop device's name (e.g. loop3) and the device paths of p1
// and p4. Where the kernel cannot scan MBR partitions (this machine's
// cannot), p1 and p4 are loop devices of their own at the partitions'
// offsets, with /dev/loopNp1 and /dev/loopNp4 made as aliases of them.
func newBootDisk(t *testing.T, dir string) (loop, p1, p4 string) {
	t.Helper()
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(48 << 20)
	f.Close()
	script := "label: dos\nlabel-id: 0x1a2b3c4d\n"
	for i, p := range testParts {
		typ := "83"
		if i == 0 {
			typ = "c"
		}
		script += fmt.Sprintf("start=%d,size=%d,type=%s\n", p.start, p.size, typ)
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	attach := func(args ...string) string {
		out, err := exec.Command("losetup", append([]string{"--find", "--show"}, args...)...).CombinedOutput()
		if err != nil {
			t.Skipf("cannot attach a loop device: %v: %s", err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() {
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("detaching %s: %v: %s", dev, err, out)
			}
		})
		return dev
	}
	whole := attach("--partscan", img)
	loop = filepath.Base(whole)
	p1, p4 = "/dev/"+PartitionDevice(loop, 1), "/dev/"+PartitionDevice(loop, 4)
	time.Sleep(500 * time.Millisecond) // udev-less partition nodes appear at once, if at all
	if _, err := os.Stat(p1); err != nil {
		for _, n := range []int{1, 4} {
			p := testParts[n-1]
			dev := attach("--offset", fmt.Sprint(p.start*512), "--sizelimit", fmt.Sprint(p.size*512), img)
			var st unix.Stat_t
			if err := unix.Stat(dev, &st); err != nil {
				t.Fatal(err)
			}
			alias := "/dev/" + PartitionDevice(loop, n)
			if err := unix.Mknod(alias, unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
				t.Skipf("cannot make %s: %v", alias, err)
			}
			t.Cleanup(func() { os.Remove(alias) })
		}
	}
	for _, c := range [][]string{
		{"mkfs.vfat", "-n", "BOOT", p1},
		{"mkfs.ext4", "-q", "-F", "-L", "data", p4},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	return loop, p1, p4
}

// putFAT writes content as node.yaml at the root of the FAT partition.
func putFAT(t *testing.T, dir, part, content string) {
	t.Helper()
	src := filepath.Join(dir, "node.yaml")
	writeFile(t, src, content)
	cmd := exec.Command("mcopy", "-o", "-i", part, src, "::node.yaml")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
}

// checkFilesystems runs fsck.fat and e2fsck read-only: a clean shutdown
// leaves both clean.
func checkFilesystems(t *testing.T, p1, p4 string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range [][]string{{"fsck.fat", "-n", p1}, {"e2fsck", "-fn", p4}} {
		if c[2] == "" {
			continue
		}
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out.String())
		}
	}
}

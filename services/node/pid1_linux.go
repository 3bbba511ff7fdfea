package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/supervise"
	"golang.org/x/sys/unix"
)

// Paths of PID 1 mode.
const (
	bootOverlay = "/boot/node.yaml"
	lastGood    = "/data/piimage/last-good.yaml"
	releaseFile = "/piimage/release.json"
	runDir      = "/run/piimage"
	// failDelay is how long a failed boot shows its error before rebooting.
	failDelay = 10 * time.Second
)

// boot is the state the boot steps build up.
type boot struct {
	con  console
	log  *slog.Logger
	ring *supervise.Ring

	root    Root
	disk    string   // whole disk holding the root, e.g. mmcblk0
	mounted []string // mount points to unmount at shutdown, in mount order
	loaded  loaded
	ota     *otaNode // updates and this boot's trial (ota_linux.go)
	// data is the data partition's check, for /status.
	data *admin.DataStatus
}

// step is one named boot step; a failing required step stops the boot.
type step struct {
	name     string
	required bool
	run      func(*boot) error
}

// bootSteps is the boot sequence, in order.
func bootSteps() []step {
	const nsnd = unix.MS_NOSUID | unix.MS_NODEV
	return []step{
		mountStep("proc", "/proc", "proc", nsnd|unix.MS_NOEXEC, "", true),
		mountStep("sysfs", "/sys", "sysfs", nsnd|unix.MS_NOEXEC, "", true),
		mountStep("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", true),
		{"open the console", false, (*boot).openConsole},
		// From an initramfs only (modules_linux.go): load the kernel
		// modules, then switch to the root partition and start over
		// there; elsewhere both do nothing.
		{"load kernel modules", false, (*boot).loadModulesStep},
		{"switch to the root partition", true, (*boot).switchRootStep},
		mountStep("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0620,ptmxmode=0666", false),
		mountStep("tmpfs", "/tmp", "tmpfs", nsnd, "mode=1777", false),
		mountStep("tmpfs", "/run", "tmpfs", nsnd, "mode=0755", true),
		mountStep("tmpfs", "/etc", "tmpfs", nsnd, "mode=0755", false),
		{"find the boot disk", true, (*boot).findDisk},
		{"mount the boot partition at /boot", false, (*boot).mountBoot},
		{"mount the data partition at /data", false, (*boot).mountData},
		{"check for an update on trial", false, (*boot).otaStep},
		{"load the overlay", true, (*boot).loadOverlay},
		{"check the data partition and its secrets", false, (*boot).protectDataStep}, // hardening_linux.go
	}
}

// mountStep mounts a kernel or memory file system; one already mounted
// there (EBUSY, e.g. devtmpfs by CONFIG_DEVTMPFS_MOUNT, or a proc, sysfs
// or devpts that an initramfs mounted) is fine.
func mountStep(fstype, target, source string, flags uintptr, data string, required bool) step {
	return step{
		name:     fmt.Sprintf("mount %s at %s", fstype, target),
		required: required,
		run: func(*boot) error {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if hasMagic(target, fstype) {
				return nil
			}
			return mount(source, target, fstype, flags, data)
		},
	}
}

// hasMagic reports whether target already is a file system of fstype, for
// the types whose magic number only a mount of them has.
func hasMagic(target, fstype string) bool {
	magic, ok := map[string]int64{
		"proc":   unix.PROC_SUPER_MAGIC,
		"sysfs":  unix.SYSFS_MAGIC,
		"devpts": unix.DEVPTS_SUPER_MAGIC,
	}[fstype]
	var st unix.Statfs_t
	return ok && unix.Statfs(target, &st) == nil && int64(st.Type) == magic
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	err := unix.Mount(source, target, fstype, flags, data)
	if errors.Is(err, unix.EBUSY) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "mount", Path: target, Err: fmt.Errorf("%s %s (%s): %w", fstype, source, data, err)}
	}
	return nil
}

// openConsole makes fds 0-2 the console when the kernel could not open
// it (a root without /dev/console).
func (b *boot) openConsole() error {
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err == nil {
		return nil
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/dev/console", Err: err}
	}
	for i := 0; i < 3; i++ {
		unix.Dup3(fd, i, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
	return nil
}

// findDisk reads root=PARTUUID= from /proc/cmdline and finds the whole
// disk with that MBR disk signature, waiting up to 10 s for it to appear.
func (b *boot) findDisk() error {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	if b.root, err = ParseRoot(string(cmdline)); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b.disk = diskWithID("/sys/block", "/dev", b.root.DiskID); b.disk != "" {
			b.log.Info("boot disk", "disk", b.disk, "id", fmt.Sprintf("%08x", b.root.DiskID), "slot", b.root.Slot())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no disk in /sys/block has disk id %08x after 10s", b.root.DiskID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// diskWithID returns the first whole disk listed in sysBlock (/sys/block)
// whose MBR, read from devDir (/dev), has disk id id.
func diskWithID(sysBlock, devDir string, id uint32) string {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if !wholeDisk(e.Name()) {
			continue
		}
		f, err := os.Open(filepath.Join(devDir, e.Name()))
		if err != nil {
			continue
		}
		sector := make([]byte, 512)
		_, err = io.ReadFull(f, sector)
		f.Close()
		if got, ok := mbrDiskID(sector); err == nil && ok && got == id {
			return e.Name()
		}
	}
	return ""
}

func (b *boot) mountBoot() error {
	dev := "/dev/" + PartitionDevice(b.disk, 1)
	if err := mount(dev, "/boot", "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "umask=0022"); err != nil {
		return err
	}
	b.mounted = append(b.mounted, "/boot")
	return nil
}

// mountData checks the data partition with e2fsck when its superblock
// asks for it (or when the mount fails), then mounts it (fsck_linux.go).
func (b *boot) mountData() error {
	dev := "/dev/" + PartitionDevice(b.disk, 4)
	c := dataChecker{Fsck: fsckPath, Say: b.con.say, Mount: func(dev, target string, flags uintptr) error {
		return mount(dev, target, "ext4", flags, "")
	}}
	dc, err := c.checkAndMount(dev, "/data", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
	if dc != nil {
		b.data = dc.Status()
	}
	if err != nil {
		return err
	}
	b.mounted = append(b.mounted, "/data")
	return nil
}

func (b *boot) loadOverlay() error {
	l, err := loadOverlay(bootOverlay, admin.SourceBoot, lastGood)
	if err != nil {
		return err
	}
	b.loaded = l
	reportOverlay(b.con, l)
	return nil
}

// pid1Main boots the node and never returns: it ends in a reboot or a
// power off.
func pid1Main(ctx context.Context, stdout io.Writer, registry Registry) {
	ring := supervise.NewRing(supervise.DefaultLogLines, nil)
	b := &boot{
		con:  console{out: stdout, ring: ring},
		log:  slog.New(slog.NewTextHandler(io.MultiWriter(stdout, ring), nil)),
		ring: ring,
	}
	defer func() {
		if r := recover(); r != nil {
			b.fail(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	b.con.say("booting")
	for _, s := range bootSteps() {
		err := s.run(b)
		switch {
		case err == nil:
		case s.required:
			b.fail(fmt.Errorf("%s: %w", s.name, err))
		default:
			b.con.say("%s: %v (continuing)", s.name, err)
		}
	}
	// Ctrl-Alt-Del sends SIGINT to PID 1 instead of rebooting at once.
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	rel, err := readRelease(releaseFile)
	if err != nil {
		b.con.say("%v", err)
	}
	n := b.loaded.node
	if err := setHostname(n.Hostname); err != nil {
		b.con.say("%v", err)
	}
	if err := writeEtc("/etc", n); err != nil {
		b.con.say("%v", err)
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		b.con.say("%v", err)
	}
	wd := openWatchdog(b.con)
	wctx, wcancel := context.WithCancel(context.Background())
	go wd.feed(wctx)

	requests := shutdownSignals()
	rt := &instance{
		con:        b.con,
		log:        b.log,
		initLog:    ring,
		registry:   registry,
		loaded:     b.loaded,
		release:    rel,
		slot:       b.root.Slot(),
		runDir:     runDir,
		exe:        "/proc/self/exe",
		network:    true,
		adminAddrs: admin.ListenAddrs(n, true),
		ota:        b.ota,
		data:       b.data,
	}
	act, err := rt.run(ctx, requests)
	if err != nil {
		b.con.say("%v", err)
		act = actionReboot
	}
	if act == actionExit {
		act = actionReboot
	}
	wcancel()
	b.shutdown(act, wd)
}

// shutdownSignals turns SIGTERM and SIGINT (Ctrl-Alt-Del) into reboot
// requests and SIGUSR2 into power off, as busybox init does.
func shutdownSignals() <-chan action {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2)
	requests := make(chan action, 1)
	go func() {
		for s := range sigs {
			a := actionReboot
			if s == syscall.SIGUSR2 {
				a = actionPoweroff
			}
			select {
			case requests <- a:
			default:
			}
		}
	}()
	return requests
}

// shutdown syncs, unmounts /data and /boot, disarms the watchdog and
// reboots or powers off.
func (b *boot) shutdown(act action, wd *watchdog) {
	unix.Sync()
	for i := len(b.mounted) - 1; i >= 0; i-- {
		if err := unix.Unmount(b.mounted[i], 0); err != nil {
			b.con.say("unmounting %s: %v; remounting it read-only", b.mounted[i], err)
			unix.Mount("", b.mounted[i], "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
	unix.Sync()
	wd.close()
	cmd := unix.LINUX_REBOOT_CMD_RESTART
	if act == actionPoweroff {
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	b.con.say("%s", act)
	if err := b.reboot(cmd); err != nil {
		b.con.say("%s: %v", act, err)
	}
	select {} // PID 1 must not exit
}

// fail reports a failed boot on the console and reboots after failDelay.
func (b *boot) fail(err error) {
	b.con.say("boot failed: %v", err)
	b.con.say("rebooting in %v", failDelay)
	time.Sleep(failDelay)
	b.shutdown(actionReboot, nil)
}

// watchdog feeds /dev/watchdog; nil when there is none.
type watchdog struct {
	f *os.File
}

func openWatchdog(con console) *watchdog {
	f, err := os.OpenFile("/dev/watchdog", os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		con.say("watchdog: %v", err)
		return nil
	}
	return &watchdog{f: f}
}

// feed sends WDIOC_KEEPALIVE every 5 s until ctx is done.
func (w *watchdog) feed(ctx context.Context) {
	if w == nil {
		return
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		unix.IoctlWatchdogKeepalive(int(w.f.Fd()))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close disarms the watchdog with the magic 'V' and closes it.
func (w *watchdog) close() {
	if w == nil {
		return
	}
	w.f.Write([]byte("V"))
	w.f.Close()
}

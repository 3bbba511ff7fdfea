package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The initramfs side of boards whose kernel has its drivers as modules
// (the Pi 2 on Debian's armmp kernel). The builder (rootfs.Initramfs)
// writes the same init binary as /init of an initramfs, with the modules
// in initramfsModules and their load order in initramfsLoadList. Booted
// from there, PID 1 loads the modules, mounts the root partition,
// switches to it and executes its /init, which boots as on every board.
const (
	initramfsModules  = "/lib/modules"
	initramfsLoadList = "/lib/modules/piimage.load"
	// newRoot is where the initramfs mounts the root partition before
	// moving it to /.
	newRoot = "/newroot"
)

// File system magic numbers of an initramfs (statfs(2) f_type): ramfs
// when the command line has root=, as ours does, else tmpfs.
const (
	ramfsMagic = 0x858458f6
	tmpfsMagic = 0x01021994
)

// inInitramfs reports whether this init runs from a piimage initramfs: the
// load list exists and / is a ramfs or tmpfs. Both are needed, so a real
// root that happens to carry the list is never treated as one.
func inInitramfs() bool {
	if _, err := os.Stat(initramfsLoadList); err != nil {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	// f_type is 32 bits wide on 32-bit ARM, where ramfs's magic is
	// negative as a signed number.
	t := uint32(st.Type)
	return t == ramfsMagic || t == tmpfsMagic
}

// loadModulesStep is the boot step that loads the initramfs's modules; it
// does nothing when the init does not run from an initramfs.
func (b *boot) loadModulesStep() error {
	if !inInitramfs() {
		return nil
	}
	f, err := os.Open(initramfsLoadList)
	if err != nil {
		return err
	}
	names, err := parseLoadList(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading %s: %w", initramfsLoadList, err)
	}
	start := time.Now()
	loaded, errs := loadModules(initramfsModules, names, finitModule)
	b.log.Info("kernel modules loaded", "loaded", loaded, "of", len(names), "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// parseLoadList reads a module load list: one module file name a line, in
// load order; blank lines and lines starting with "#" are skipped. A name
// must be a plain file name.
func parseLoadList(r io.Reader) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.ContainsAny(l, "/\x00") || l == "." || l == ".." {
			return nil, fmt.Errorf("line %d: %q is not a module file name", n, l)
		}
		names = append(names, l)
	}
	return names, sc.Err()
}

// loadModules loads each module file of dir in order with load, going on
// after a failure (a driver whose hardware is missing refuses to load; the
// others still matter). It returns how many loaded and an error for each
// that did not. A module already loaded counts as loaded.
func loadModules(dir string, names []string, load func(path string) error) (int, []error) {
	loaded := 0
	var errs []error
	for _, n := range names {
		p := filepath.Join(dir, n)
		err := load(p)
		if errors.Is(err, unix.EEXIST) {
			err = nil
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		loaded++
	}
	return loaded, errs
}

// finitModule loads the kernel module file at path with finit_module(2).
func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return &os.PathError{Op: "finit_module", Path: path, Err: err}
	}
	return nil
}

// switchRootStep is the boot step that leaves the initramfs: it waits for
// the boot disk, mounts the root partition that root=PARTUUID= names (read
// only, rootfstype= or squashfs), moves /dev, /proc and /sys into it, frees
// the initramfs's files, makes it / (MS_MOVE, then chroot, as
// switch_root(8) does) and executes its /init. It returns only on failure;
// outside an initramfs it does nothing.
func (b *boot) switchRootStep() error {
	if !inInitramfs() {
		return nil
	}
	if err := b.findDisk(); err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	fstype := rootFSType(string(cmdline))
	dev := "/dev/" + PartitionDevice(b.disk, b.root.Partition)
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := mount(dev, newRoot, fstype, unix.MS_RDONLY, ""); err != nil {
		return err
	}
	if _, err := os.Stat(newRoot + "/init"); err != nil {
		unix.Unmount(newRoot, 0)
		return fmt.Errorf("the root partition %s has no /init: %w", dev, err)
	}
	for _, m := range []string{"/dev", "/proc", "/sys"} {
		if err := unix.Mount(m, newRoot+m, "", unix.MS_MOVE, ""); err != nil {
			return &os.PathError{Op: "mount --move", Path: newRoot + m, Err: err}
		}
	}
	freeInitramfs()
	b.con.say("root %s mounted; leaving the initramfs", dev)
	if err := unix.Chdir(newRoot); err != nil {
		return &os.PathError{Op: "chdir", Path: newRoot, Err: err}
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return &os.PathError{Op: "mount --move", Path: "/", Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: newRoot, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	err := unix.Exec("/init", []string{"/init"}, os.Environ())
	return &os.PathError{Op: "exec", Path: "/init", Err: err}
}

// rootFSType returns the last rootfstype= of a kernel command line, or
// squashfs.
func rootFSType(cmdline string) string {
	t := "squashfs"
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "rootfstype="); ok && v != "" {
			t = v
		}
	}
	return t
}

// freeInitramfs deletes the initramfs's files before it becomes
// unreachable: its memory is freed once nothing uses them. The running
// init's file is freed when it executes the root's /init.
func freeInitramfs() {
	if f, err := os.Open(initramfsLoadList); err == nil {
		names, _ := parseLoadList(f)
		f.Close()
		for _, n := range names {
			os.Remove(filepath.Join(initramfsModules, n))
		}
	}
	os.Remove(initramfsLoadList)
	os.Remove("/init")
}

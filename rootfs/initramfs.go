package rootfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/boards"
	"github.com/piimage/piimage/image/cpio"
)

// The initramfs of a board whose kernel has its drivers as modules (the
// Pi 2 on Debian's armmp kernel). It holds the same init binary as the
// root, so the image has one init:
//
//	/init                         the init
//	/dev/console                  character device 5:1, so the kernel can
//	                              give the init its console
//	/dev, /proc, /sys             mount points
//	/lib/modules/NAME.ko          the kernel modules, uncompressed
//	/lib/modules/piimage.load     their file names in load order, one a line
//
// As PID 1 the init sees the load list, loads the modules with
// finit_module(2), waits for the disk that root=PARTUUID= names, mounts
// that squashfs root, moves /dev, /proc and /sys into it, makes it the root
// (MS_MOVE and chroot, as switch_root does) and executes its /init, which
// boots as on every other board. services/node reads the same paths.
const (
	// InitramfsModulesDir holds the modules in the initramfs.
	InitramfsModulesDir = "lib/modules"
	// InitramfsLoadList lists the modules to load, in order.
	InitramfsLoadList = InitramfsModulesDir + "/piimage.load"
)

// Initramfs returns the initramfs (an uncompressed newc cpio archive) that
// runs initData as /init and loads mods in order. Every entry is stamped
// with modTime, so the same inputs give the same bytes.
func Initramfs(initData []byte, mods []boards.KernelModule, modTime time.Time) ([]byte, error) {
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	m := fstest.MapFS{
		"init":        {Data: initData, Mode: 0o755},
		"dev":         dir,
		"dev/console": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Sys: cpio.Device{Major: 5, Minor: 1}},
		"proc":        dir,
		"sys":         dir,
		"lib":         dir,
		"lib/modules": dir,
	}
	var list strings.Builder
	list.WriteString("# Kernel modules the init loads from this folder, in order (piimage).\n")
	for _, mod := range mods {
		data, err := os.ReadFile(mod.Path)
		if err != nil {
			return nil, fmt.Errorf("reading kernel module %s: %w", mod.Name, err)
		}
		name := mod.Name + ".ko"
		if strings.ContainsAny(mod.Name, "/\n") || m[InitramfsModulesDir+"/"+name] != nil {
			return nil, fmt.Errorf("kernel module name %q is not a unique file name", mod.Name)
		}
		m[InitramfsModulesDir+"/"+name] = &fstest.MapFile{Data: data, Mode: 0o644}
		list.WriteString(name + "\n")
	}
	m[InitramfsLoadList] = &fstest.MapFile{Data: []byte(list.String()), Mode: 0o644}
	var buf bytes.Buffer
	if _, err := cpio.WriteFS(&buf, m, cpio.Options{ModTime: modTime}); err != nil {
		return nil, fmt.Errorf("writing the initramfs: %w", err)
	}
	return buf.Bytes(), nil
}

package rootfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"

	"github.com/piimage/piimage/boards"
	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/overlays"
)

// Cmdline returns the kernel command line that boots root slot slot ("a" or
// "b") of the disk with identifier diskID, with the serial console on
// ttyS0 (the Pi 3 and 4).
func Cmdline(diskID uint32, slot string) (string, error) {
	return cmdline("ttyS0", diskID, slot)
}

// BoardCmdline is Cmdline with the serial console of board b.
func BoardCmdline(b boards.Board, diskID uint32, slot string) (string, error) {
	serial := b.SerialConsole
	if serial == "" {
		serial = "ttyS0"
	}
	return cmdline(serial, diskID, slot)
}

func cmdline(serial string, diskID uint32, slot string) (string, error) {
	n, err := image.SlotPartition(slot)
	if err != nil {
		return "", err
	}
	return strings.Join([]string{
		"console=" + serial + ",115200",
		"console=tty1",
		"root=PARTUUID=" + image.PartUUID(diskID, n),
		"rootfstype=squashfs",
		"ro",
		"rootwait",
		"init=" + InitPath,
		"panic=10",
		"oops=panic",
	}, " "), nil
}

// bootTree is the FAT32 boot partition: firmware at the root, config.txt
// selecting slot-a/, the slot folder with kernel, device trees, overlays,
// the initramfs on boards that need one, and cmdline.txt, an empty slot-b/,
// and the node's overlay.
func bootTree(o Options, k *boards.Kernel, firmwareDir string, diskID uint32, relJSON, initData []byte) (fs.FS, error) {
	b := o.Board
	m := fstest.MapFS{}
	add := func(dst, src string) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("reading boot file: %w", err)
		}
		m[dst] = &fstest.MapFile{Data: data, Mode: 0o644}
		return nil
	}
	for _, f := range b.FirmwareFiles {
		if err := add(f, filepath.Join(firmwareDir, f)); err != nil {
			return nil, err
		}
	}
	slot := image.SlotDir("a")
	kernel, err := os.ReadFile(k.Image)
	if err != nil {
		return nil, fmt.Errorf("reading kernel: %w", err)
	}
	if err := boards.CheckKernelArch(kernel, b.KernelArch); err != nil {
		return nil, fmt.Errorf("checking %s from %s: %w", b.KernelFile, k.Source, err)
	}
	m[slot+"/"+b.KernelFile] = &fstest.MapFile{Data: kernel, Mode: 0o644}
	for _, dtb := range b.DeviceTrees {
		if err := add(slot+"/"+dtb, filepath.Join(k.DTBDir, dtb)); err != nil {
			return nil, err
		}
	}
	if k.OverlaysDir != "" {
		ents, err := os.ReadDir(k.OverlaysDir)
		if err != nil {
			return nil, fmt.Errorf("reading device tree overlays: %w", err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				if err := add(slot+"/overlays/"+e.Name(), filepath.Join(k.OverlaysDir, e.Name())); err != nil {
					return nil, err
				}
			}
		}
	}
	if b.Initramfs != "" {
		rd, err := Initramfs(initData, k.Modules, o.ModTime)
		if err != nil {
			return nil, err
		}
		m[slot+"/"+b.Initramfs] = &fstest.MapFile{Data: rd, Mode: 0o644}
	}
	cmdline, err := BoardCmdline(b, diskID, "a")
	if err != nil {
		return nil, err
	}
	m[slot+"/cmdline.txt"] = &fstest.MapFile{Data: []byte(cmdline + "\n"), Mode: 0o644}
	m[slot+"/release.json"] = &fstest.MapFile{Data: relJSON, Mode: 0o644}
	// The slot's signed manifest; signing (otaimage.Sign) fills them in
	// once the root filesystem's bytes are known.
	m[slot+"/manifest.json"] = &fstest.MapFile{Mode: 0o644}
	m[slot+"/manifest.sig"] = &fstest.MapFile{Mode: 0o644}
	m[image.SlotDir("b")] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	cfg := []byte(b.ConfigTxt(slot))
	m["config.txt"] = &fstest.MapFile{Data: cfg, Mode: 0o644}
	// tryboot.txt is read only on a one-shot trial reboot; until an update
	// fills the other slot it boots the same slot.
	m["tryboot.txt"] = &fstest.MapFile{Data: cfg, Mode: 0o644}
	m["node.yaml"] = &fstest.MapFile{Data: o.OverlayBytes, Mode: 0o644}
	return m, nil
}

// dataTree is the data partition's first contents: the overlay as the last
// good copy, and the web root on web nodes.
func dataTree(o Options) (fs.FS, error) {
	m := fstest.MapFS{
		".":          {Mode: fs.ModeDir | 0o755},
		"piimage":    {Mode: fs.ModeDir | 0o700},
		LastGoodPath: {Data: o.OverlayBytes, Mode: 0o600},
	}
	if o.AdminFiles != nil {
		m[AdminDir] = &fstest.MapFile{Mode: fs.ModeDir | 0o700}
		for name, data := range o.AdminFiles {
			m[AdminDir+"/"+name] = &fstest.MapFile{Data: data, Mode: 0o600}
		}
	}
	if o.Node.Role == overlays.RoleWeb && len(o.MirrorSecret) > 0 {
		m["mirror"] = &fstest.MapFile{Mode: fs.ModeDir | 0o700}
		m[MirrorSecretPath] = &fstest.MapFile{Data: o.MirrorSecret, Mode: 0o600}
	}
	if o.Node.Role != overlays.RoleWeb && o.SiteDir == "" {
		return m, nil
	}
	if o.SiteDir == "" {
		m[WebRoot+"/index.html"] = &fstest.MapFile{Data: defaultIndex(o.Node.Hostname), Mode: 0o644}
		return m, nil
	}
	site := os.DirFS(o.SiteDir)
	err := fs.WalkDir(site, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		dst := WebRoot + "/" + p
		switch {
		case d.IsDir():
			m[dst] = &fstest.MapFile{Mode: fs.ModeDir | info.Mode().Perm()}
		case d.Type().IsRegular():
			data, err := fs.ReadFile(site, p)
			if err != nil {
				return err
			}
			m[dst] = &fstest.MapFile{Data: data, Mode: info.Mode().Perm()}
		case d.Type()&fs.ModeSymlink != 0:
			t, err := fs.ReadLink(site, p)
			if err != nil {
				return err
			}
			m[dst] = &fstest.MapFile{Data: []byte(t), Mode: fs.ModeSymlink | 0o777}
		default:
			return fmt.Errorf("%s: not a regular file, folder or symlink", p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copying site folder %s: %w", o.SiteDir, err)
	}
	return m, nil
}

func defaultIndex(hostname string) []byte {
	return []byte("<!doctype html>\n<title>piimage</title>\n<h1>It works</h1>\n<p>Served by " + hostname + ", a piimage web node. Replace this page with your site (piimage build --site DIR).</p>\n")
}

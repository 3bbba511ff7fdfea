package boards

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
)

// Kernel is a fetched kernel: where its files are on this machine.
type Kernel struct {
	// Source names where it came from: a Go module ("path@version") or a
	// Debian package ("name_version_arch").
	Source string
	// Image is the kernel image's path.
	Image string
	// DTBDir holds the board's device trees under their FAT names.
	DTBDir string
	// OverlaysDir holds device tree overlays; empty when there are none.
	OverlaysDir string
	// Modules are the kernel modules the initramfs loads, each after its
	// dependencies; empty when the board needs no initramfs.
	Modules []KernelModule
}

// KernelModule is one kernel module file to load.
type KernelModule struct {
	// Name is the module's name ("sdhci_iproc"); the initramfs stores it
	// as NAME.ko.
	Name string
	// Path is the uncompressed module file's path on this machine.
	Path string
}

// FetchKernel fetches the board's kernel: its Go module through the module
// proxy (verified by srcDir's go.sum) or its Debian package from a mirror
// (verified by the pinned SHA-256). log, when set, hears about downloads
// and unpacking.
func (b Board) FetchKernel(ctx context.Context, srcDir string, log *slog.Logger) (*Kernel, error) {
	if b.Debian != nil {
		return b.Debian.Fetch(ctx, DebianSource{Log: log})
	}
	dir, err := Fetch(ctx, srcDir, b.Kernel)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Source: b.Kernel.String(), Image: filepath.Join(dir, b.KernelFile), DTBDir: dir}
	if b.OverlaysDir != "" {
		k.OverlaysDir = filepath.Join(dir, b.OverlaysDir)
	}
	return k, nil
}

// KernelSource names the board's kernel for build metadata without
// fetching it.
func (b Board) KernelSource() string {
	if b.Debian != nil {
		return b.Debian.Package.String()
	}
	return b.Kernel.String()
}

// DebianKernel is a kernel taken from a Debian linux-image package: the
// image, device trees and the modules an initramfs loads.
type DebianKernel struct {
	Package DebianPackage
	// Release is the kernel release (uname -r), e.g. "6.1.0-50-armmp":
	// the package holds boot/vmlinuz-RELEASE, usr/lib/linux-image-RELEASE/
	// (device trees) and lib/modules/RELEASE/.
	Release string
	// Modules are the modules the initramfs loads, by name; their
	// dependencies (.modinfo depends= and softdep=) are added.
	Modules []string
}

// unpackFormat changes when the cache layout of an unpacked package does.
const unpackFormat = "1"

// stampFile marks a completely unpacked package: it holds the package's
// SHA-256 and unpackFormat.
const stampFile = ".piimage-unpacked"

// indexFile lists every module's ModInfo, written while unpacking.
const indexFile = "piimage-modinfo.json"

// Fetch returns the kernel of k's package: downloaded, verified and
// unpacked once into src's cache (the kernel image, the Broadcom device
// trees and lib/modules/), then read from there.
func (k DebianKernel) Fetch(ctx context.Context, src DebianSource) (*Kernel, error) {
	cache, err := src.cacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "debian", k.Package.String())
	stamp := k.Package.SHA256 + " " + unpackFormat + "\n"
	if b, err := os.ReadFile(filepath.Join(dir, stampFile)); err != nil || string(b) != stamp {
		deb, err := src.Fetch(ctx, k.Package)
		if err != nil {
			return nil, err
		}
		src.log().Info("unpacking Debian package (once; then cached)", "package", k.Package.String(), "dir", dir)
		if err := k.unpack(deb, dir, stamp); err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", k.Package, err)
		}
	}
	return k.kernel(dir)
}

// keep says which package files the cache keeps: the kernel image and
// config, the Broadcom (Raspberry Pi) device trees, and the modules.
func (k DebianKernel) keep(name string) bool {
	switch {
	case name == "boot" || name == "boot/vmlinuz-"+k.Release || name == "boot/config-"+k.Release:
		return true
	case name == "usr" || name == "usr/lib" || name == "usr/lib/linux-image-"+k.Release:
		return true
	case path.Dir(name) == "usr/lib/linux-image-"+k.Release:
		return strings.HasPrefix(path.Base(name), "bcm") && strings.HasSuffix(name, ".dtb")
	}
	mods := "lib/modules/" + k.Release
	return name == "lib" || name == "lib/modules" || name == mods || strings.HasPrefix(name, mods+"/")
}

// unpack extracts deb into a fresh folder beside dir, indexes its modules,
// and moves it to dir.
func (k DebianKernel) unpack(deb, dir, stamp string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	mods := "lib/modules/" + k.Release + "/"
	var index []ModInfo
	visit := func(name string, data []byte) error {
		rel, ok := strings.CutPrefix(name, mods)
		if !ok {
			return nil
		}
		switch {
		case strings.HasSuffix(name, ".ko.xz"):
			// Modules compressed by the package are stored
			// uncompressed, so the init needs no decompressor and the
			// kernel no CONFIG_MODULE_DECOMPRESS.
			zr, err := xz.NewReader(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("decompressing %s: %w", name, err)
			}
			ko, err := io.ReadAll(zr)
			if err != nil {
				return fmt.Errorf("decompressing %s: %w", name, err)
			}
			plain := filepath.Join(tmp, filepath.FromSlash(strings.TrimSuffix(name, ".xz")))
			if err := os.WriteFile(plain, ko, 0o644); err != nil {
				return err
			}
			os.Remove(filepath.Join(tmp, filepath.FromSlash(name)))
			data, rel = ko, strings.TrimSuffix(rel, ".xz")
		case strings.HasSuffix(name, ".ko"):
		default:
			return nil
		}
		mi, err := ParseModInfo(rel, data)
		if err != nil {
			return err
		}
		index = append(index, mi)
		return nil
	}
	if err := extractDeb(deb, tmp, k.keep, visit); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(tmp, "boot", "vmlinuz-"+k.Release)); err != nil {
		return fmt.Errorf("the package has no boot/vmlinuz-%s: is the release %q right?", k.Release, k.Release)
	}
	js, err := json.MarshalIndent(index, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, filepath.FromSlash(mods), indexFile), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, stampFile), []byte(stamp), 0o644); err != nil {
		return err
	}
	return replaceDir(tmp, dir, stamp)
}

// replaceDir moves the unpacked folder tmp to dir. Builds may run at once
// (go test runs packages in parallel): when another one has put a complete
// unpacking there meanwhile, that one stays, because a build may be
// reading it. Only a folder without a current stamp is moved aside.
func replaceDir(tmp, dir, stamp string) error {
	complete := func() bool {
		b, err := os.ReadFile(filepath.Join(dir, stampFile))
		return err == nil && string(b) == stamp
	}
	if complete() {
		return nil
	}
	if _, err := os.Lstat(dir); err == nil {
		old, err := os.MkdirTemp(filepath.Dir(dir), ".old-*")
		if err != nil {
			return err
		}
		if err := os.Rename(dir, filepath.Join(old, "x")); err != nil && !complete() {
			os.RemoveAll(old)
			return err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if complete() {
			return nil
		}
		return err
	}
	return nil
}

// kernel resolves k's modules in the unpacked package at dir.
func (k DebianKernel) kernel(dir string) (*Kernel, error) {
	mods := filepath.Join(dir, "lib", "modules", k.Release)
	js, err := os.ReadFile(filepath.Join(mods, indexFile))
	if err != nil {
		return nil, fmt.Errorf("reading the module index of %s: %w", k.Package, err)
	}
	var index []ModInfo
	if err := json.Unmarshal(js, &index); err != nil {
		return nil, fmt.Errorf("reading the module index of %s: %w", k.Package, err)
	}
	builtin, err := readLines(filepath.Join(mods, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("reading modules.builtin of %s: %w", k.Package, err)
	}
	order, err := NewModuleIndex(index, builtin).Resolve(k.Modules)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Package, err)
	}
	out := &Kernel{
		Source: k.Package.String(),
		Image:  filepath.Join(dir, "boot", "vmlinuz-"+k.Release),
		DTBDir: filepath.Join(dir, "usr", "lib", "linux-image-"+k.Release),
	}
	for _, m := range order {
		out.Modules = append(out.Modules, KernelModule{Name: m.Name, Path: filepath.Join(mods, filepath.FromSlash(m.Path))})
	}
	return out, nil
}

func readLines(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

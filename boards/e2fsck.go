package boards

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
)

// The init checks and repairs the ext4 data partition with e2fsck before
// it mounts it (services/node fsck*.go). No Go module carries e2fsck;
// Debian's e2fsck-static package does: one statically linked program,
// sbin/e2fsck.static, that runs without a C library on the read-only root.

// E2fsckStatic are Debian bookworm's e2fsck-static packages by Debian
// architecture, pinned by the values of `apt-cache show
// e2fsck-static:ARCH`. When Debian replaces the version (a point release
// or a security update), a build that finds the mirror without it says
// so; update the pin (version, file name, size and SHA-256) from
// apt-cache show.
var E2fsckStatic = map[string]DebianPackage{
	"arm64": {
		Name:     "e2fsck-static",
		Version:  "1.47.0-2+b2",
		Arch:     "arm64",
		Filename: "pool/main/e/e2fsprogs/e2fsck-static_1.47.0-2+b2_arm64.deb",
		Size:     661268,
		SHA256:   "c737ccfa53974dcbe1b5d44fdaf64d8127c050aad6ebd25309d1b74636fa9949",
	},
	"armhf": {
		Name:     "e2fsck-static",
		Version:  "1.47.0-2+b2",
		Arch:     "armhf",
		Filename: "pool/main/e/e2fsprogs/e2fsck-static_1.47.0-2+b2_armhf.deb",
		Size:     626812,
		SHA256:   "b94744e9b9f7de8e57cb5157809900fb643636bfb172d62b1876ec782d031880",
	},
}

// Paths inside the e2fsck-static package.
const (
	e2fsckBinary    = "sbin/e2fsck.static"
	e2fsckCopyright = "usr/share/doc/e2fsck-static/copyright"
)

// DebianArch returns the Debian architecture that runs on the board as its
// init does: arm64, or armhf (ARMv7 with hardware floating point) for a
// 32-bit ARMv7 init.
func (b Board) DebianArch() (string, error) {
	switch {
	case b.GOARCH == "arm64":
		return "arm64", nil
	case b.GOARCH == "arm" && b.GOARM == "7":
		return "armhf", nil
	}
	return "", fmt.Errorf("board %s: no Debian architecture for GOARCH=%s GOARM=%s", b.Name, b.GOARCH, b.GOARM)
}

// E2fsckPackage returns the pinned e2fsck-static package for the board.
func (b Board) E2fsckPackage() (DebianPackage, error) {
	arch, err := b.DebianArch()
	if err != nil {
		return DebianPackage{}, err
	}
	p, ok := E2fsckStatic[arch]
	if !ok {
		return DebianPackage{}, fmt.Errorf("board %s: no e2fsck-static package pinned for %s", b.Name, arch)
	}
	return p, nil
}

// E2fsck is a fetched static e2fsck: where its files are on this machine.
type E2fsck struct {
	// Source names the package ("e2fsck-static_VERSION_ARCH").
	Source string
	// Binary is the statically linked e2fsck program.
	Binary string
	// Copyright is the package's copyright file (e2fsprogs is GPL-2:
	// the image carries it next to the program).
	Copyright string
}

// FetchE2fsck returns the board's static e2fsck: its Debian package
// downloaded and verified by the pinned SHA-256 once, unpacked into src's
// cache, and the program checked to be a static executable for the
// board's machine.
func (b Board) FetchE2fsck(ctx context.Context, src DebianSource) (*E2fsck, error) {
	p, err := b.E2fsckPackage()
	if err != nil {
		return nil, err
	}
	e, err := fetchE2fsck(ctx, src, p)
	if err != nil {
		return nil, err
	}
	if err := checkStaticELF(e.Binary, b.GOARCH); err != nil {
		return nil, fmt.Errorf("e2fsck of %s: %w", p, err)
	}
	return e, nil
}

// fetchE2fsck unpacks the program and its copyright file of package p
// into the cache, once.
func fetchE2fsck(ctx context.Context, src DebianSource, p DebianPackage) (*E2fsck, error) {
	cache, err := src.cacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "debian", p.String())
	stamp := p.SHA256 + " " + unpackFormat + "\n"
	if b, err := os.ReadFile(filepath.Join(dir, stampFile)); err != nil || string(b) != stamp {
		deb, err := src.Fetch(ctx, p)
		if err != nil {
			return nil, err
		}
		if err := unpackE2fsck(deb, dir, stamp); err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", p, err)
		}
	}
	return &E2fsck{
		Source:    p.String(),
		Binary:    filepath.Join(dir, filepath.FromSlash(e2fsckBinary)),
		Copyright: filepath.Join(dir, filepath.FromSlash(e2fsckCopyright)),
	}, nil
}

// unpackE2fsck extracts the program and the copyright file of the .deb
// into a fresh folder beside dir and moves it to dir.
func unpackE2fsck(deb, dir, stamp string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	keep := func(name string) bool {
		return name == e2fsckBinary || name == e2fsckCopyright
	}
	if err := extractDeb(deb, tmp, keep, nil); err != nil {
		return err
	}
	for _, f := range []string{e2fsckBinary, e2fsckCopyright} {
		if _, err := os.Stat(filepath.Join(tmp, filepath.FromSlash(f))); err != nil {
			return fmt.Errorf("the package has no %s", f)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, stampFile), []byte(stamp), 0o644); err != nil {
		return err
	}
	return replaceDir(tmp, dir, stamp)
}

// checkStaticELF reports an error unless path is an ELF executable for
// goarch ("arm64" or "arm") without a program interpreter (statically
// linked: the root has no C library).
func checkStaticELF(path, goarch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}[goarch]
	if f.Machine != want {
		return fmt.Errorf("%s is for %v, but the board's init is built for %s", path, f.Machine, goarch)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is an ELF %v, not a program", path, f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the root has no C library", path)
		}
	}
	return nil
}

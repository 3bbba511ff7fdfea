// Package ota defines piimage's over-the-air update formats: the signed
// manifest of a slot (its root filesystem and the files of its folder on the
// boot partition, with their SHA-256 hashes, the board and the version), the
// ed25519 signature over it, the key files, and the payload stream that
// carries a slot to a node. It opens no sockets and touches no disk: the
// device agent (services/ota) and the builder (image/ota/otaimage,
// cmd/piimage) use it.
//
// The package must stay small and free of the builder's writers: the init
// links it.
package ota

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Format is the manifest format version this package writes and reads.
const Format = 1

// Names in a slot folder that the manifest itself does not list.
const (
	// ManifestFile holds the signed manifest bytes. It is written last: a
	// slot folder without it is incomplete and is never booted.
	ManifestFile = "manifest.json"
	// SignatureFile holds the signature over ManifestFile.
	SignatureFile = "manifest.sig"
	// CmdlineFile is written by the node from Manifest.Cmdline, with its
	// own disk identifier and the slot's partition.
	CmdlineFile = "cmdline.txt"
	// TempSuffix marks files being written; no slot file may end in it.
	TempSuffix = ".piimage-new"
)

// Limits of what a manifest may describe. They bound what a node reads
// before the signature is checked and what it writes after.
const (
	MaxManifestSize  = 1 << 20
	MaxSignatureSize = 4 << 10
	MaxFiles         = 4096
	MaxFileSize      = 512 << 20
	MaxRootSize      = 4 << 30
)

// Digest is a SHA-256 hash, written as 64 lowercase hex digits.
type Digest [32]byte

// String returns the hash in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText writes the hash in hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("sha256 %q: want 64 hex digits", b)
	}
	if _, err := hex.Decode(d[:], b); err != nil {
		return fmt.Errorf("sha256 %q: %w", b, err)
	}
	if strings.ToLower(string(b)) != string(b) {
		return fmt.Errorf("sha256 %q: want lowercase hex", b)
	}
	return nil
}

// Part is the root filesystem of a slot: the first Size bytes of its root
// partition.
type Part struct {
	Size   int64  `json:"size"`
	SHA256 Digest `json:"sha256"`
}

// File is one file of a slot folder, by its slash-separated path inside
// the folder (e.g. "vmlinuz", "overlays/disable-bt.dtbo").
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 Digest `json:"sha256"`
}

// Manifest describes one slot: everything a node writes for it and the
// facts it checks before writing.
type Manifest struct {
	Format int `json:"format"`
	// Board is the board name ("pi3", "pi4"); a node refuses another
	// board's slot.
	Board   string `json:"board"`
	Version string `json:"version"`
	Built   string `json:"built,omitempty"`
	// TryBoot says the board's firmware supports tryboot.txt and the
	// "0 tryboot" reboot (Pi 4); without it the node switches config.txt
	// for the trial and relies on its own trial counter.
	TryBoot bool `json:"tryboot"`
	Root    Part `json:"root"`
	// Files are the slot folder's files, cmdline.txt and the manifest
	// excepted, in the order the payload carries them.
	Files []File `json:"files"`
	// ConfigTxt is the firmware's config.txt booting this slot; the node
	// rewrites its os_prefix line for the folder the slot lands in.
	ConfigTxt string `json:"config_txt"`
	// Cmdline is the kernel command line; the node rewrites its root=
	// word for its own disk identifier and the slot's partition.
	Cmdline string `json:"cmdline"`
}

// Marshal returns the manifest as indented JSON with a final newline: the
// bytes that are signed and stored as ManifestFile.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseManifest decodes and validates manifest bytes strictly: unknown
// fields, trailing data and any invalid field are errors.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("parsing manifest: %d bytes, more than %d", len(b), MaxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parsing manifest: data after the JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate reports every invalid field of m.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.Format != Format {
		bad("format: %d, want %d", m.Format, Format)
	}
	if !token(m.Board) {
		bad("board: %q is not a board name", m.Board)
	}
	if m.Version == "" || len(m.Version) > 128 || strings.ContainsAny(m.Version, "\x00\n\r") {
		bad("version: %q: want 1 to 128 characters on one line", m.Version)
	}
	if len(m.Built) > 64 || strings.ContainsAny(m.Built, "\x00\n\r") {
		bad("built: %q: want at most 64 characters on one line", m.Built)
	}
	if m.Root.Size <= 0 || m.Root.Size > MaxRootSize {
		bad("root.size: %d, want 1 to %d", m.Root.Size, int64(MaxRootSize))
	}
	if len(m.Files) == 0 || len(m.Files) > MaxFiles {
		bad("files: %d entries, want 1 to %d", len(m.Files), MaxFiles)
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		if err := checkSlotPath(f.Path); err != nil {
			bad("files[%d].path: %v", i, err)
			continue
		}
		key := strings.ToLower(f.Path) // FAT names are case-insensitive
		if seen[key] {
			bad("files[%d].path: %q listed twice (FAT ignores case)", i, f.Path)
		}
		seen[key] = true
		if f.Size < 0 || f.Size > MaxFileSize {
			bad("files[%d].size: %d, want 0 to %d", i, f.Size, MaxFileSize)
		}
	}
	for p := range seen {
		for dir := p; strings.Contains(dir, "/"); {
			dir = dir[:strings.LastIndex(dir, "/")]
			if seen[dir] {
				bad("files: %q is both a file and a folder", dir)
			}
		}
	}
	if strings.Count(m.ConfigTxt, "os_prefix=") == 0 || len(m.ConfigTxt) > 64<<10 {
		bad("config_txt: want a config.txt (at most 64 KiB) with an os_prefix= line")
	}
	if !strings.Contains(m.Cmdline, "root=") || len(m.Cmdline) > 4096 || strings.ContainsAny(m.Cmdline, "\x00\n\r") {
		bad("cmdline: want one line (at most 4 KiB) with a root= word")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid manifest: %w", errors.Join(errs...))
	}
	return nil
}

// token reports whether s is a short name of lowercase letters, digits,
// '-' and '_'.
func token(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkSlotPath accepts a clean relative slash path of FAT-safe names that
// is not one of the names the node writes itself.
func checkSlotPath(p string) error {
	if !fs.ValidPath(p) || p == "." || len(p) > 240 {
		return fmt.Errorf("%q is not a clean relative path", p)
	}
	for _, el := range strings.Split(p, "/") {
		if strings.ContainsAny(el, "\\:*?\"<>|") || strings.TrimSpace(el) != el || strings.HasSuffix(el, ".") {
			return fmt.Errorf("%q: %q is not a FAT-safe name", p, el)
		}
		for _, c := range el {
			if c < 0x20 || c == 0x7f {
				return fmt.Errorf("%q: control character in a name", p)
			}
		}
	}
	switch strings.ToLower(p) {
	case ManifestFile, SignatureFile, CmdlineFile:
		return fmt.Errorf("%q is written by the node, not listed", p)
	}
	if strings.HasSuffix(strings.ToLower(p), TempSuffix) {
		return fmt.Errorf("%q ends in the temporary suffix %s", p, TempSuffix)
	}
	return nil
}

// Lookup returns the file at path, comparing without case as FAT does.
func (m *Manifest) Lookup(path string) (File, bool) {
	for _, f := range m.Files {
		if strings.EqualFold(f.Path, path) {
			return f, true
		}
	}
	return File{}, false
}

// TotalSize is the bytes of the root and every file.
func (m *Manifest) TotalSize() int64 {
	n := m.Root.Size
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

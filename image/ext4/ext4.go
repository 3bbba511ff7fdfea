// Package ext4 writes a fresh, deterministic ext4 filesystem holding an
// io/fs.FS tree: the data partition of a piimage SD card.
//
// The same tree and Options always give the same bytes: every timestamp is
// Options.ModTime, the UUID and directory hash seed come from Options, and
// nothing is random. The filesystem has a journal (it is mounted read-write
// and must survive power loss) and metadata checksums, and is clean for
// e2fsck.
//
// Features set: has_journal, ext_attr, dir_index (compat); filetype, extent,
// 64bit, flex_bg (incompat); sparse_super, large_file, huge_file, dir_nlink,
// extra_isize, metadata_csum (ro_compat). There is no resize inode and no
// reserved GDT blocks; directories are linear (the kernel indexes them itself
// once it needs to); inodes are 256 bytes; no blocks are reserved for root
// (everything on the device runs as root); the journal is an empty jbd2 v2
// log with no optional features, as mke2fs makes it.
//
// Layout: the bitmaps and inode tables of all groups are packed after the
// primary group descriptors (flex_bg), then come the journal, the
// directories and the file data in walk order, each file contiguous except
// where a backup superblock is in the way. Inodes are numbered in walk
// order from 12 (11 is lost+found).
//
// Write writes only metadata and file data: it assumes that every byte of w
// it does not write reads as zero (the image builder hands it a sparse,
// pre-zeroed file). Zero-filled stretches of file data are skipped too.
package ext4

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// Options tune the filesystem. The zero value is valid.
type Options struct {
	// Label is the volume name, at most 16 bytes.
	Label string
	// UUID identifies the filesystem. All zeros means one derived from
	// Label and the size (still deterministic).
	UUID [16]byte
	// HashSeed seeds the directory hash. All zeros means one derived from
	// the UUID.
	HashSeed [16]byte
	// ModTime is every timestamp in the filesystem (inodes and superblock).
	// The zero time means the Unix epoch. It must lie between 1970 and 2446.
	ModTime time.Time
	// BlockSize is 1024, 2048 or 4096 (0 means 4096).
	BlockSize int
	// InodeRatio is bytes of filesystem per inode (0 means 16384, at least
	// 1024).
	InodeRatio int
	// JournalBlocks is the journal length in blocks (0 means mke2fs's
	// default for the filesystem size: 1024 blocks below 128 MiB of 4 KiB
	// blocks, 4096 below 1 GiB, 8192 below 2 GiB, 16384 below 16 GiB).
	// It must be 1024..10240000 and fit.
	JournalBlocks int
}

// Write builds a fresh ext4 filesystem holding the tree fsys into w, which
// stands for a partition of exactly size bytes starting at offset 0 of w.
//
// The tree is walked with fs.WalkDir; regular files, directories and
// symlinks (fs.ModeSymlink, target from fs.ReadLink) are supported, anything
// else is an error. Permissions (with setuid, setgid and sticky bits) come
// from the entries' modes, the root directory's from the tree's "." (note
// that testing/fstest.MapFS gives a "." without its own entry mode 0555);
// owners are uid/gid 0. A top-level "lost+found" in the tree must be an
// empty directory; the filesystem gets its own. A size that is not a
// multiple of the block size is rounded down.
//
// Write never reads from w and never writes outside [0, size). It assumes
// unwritten bytes of w read as zero.
func Write(w io.WriterAt, size int64, fsys fs.FS, opts Options) error {
	o, err := opts.normalize(size)
	if err != nil {
		return err
	}
	nodes, err := readTree(fsys)
	if err != nil {
		return err
	}
	g, err := newGeometry(size, o)
	if err != nil {
		return err
	}
	l, err := plan(g, o, nodes)
	if err != nil {
		return err
	}
	return l.write(w, fsys)
}

// normalize fills in defaults and checks every option.
func (o Options) normalize(size int64) (Options, error) {
	if len(o.Label) > 16 {
		return o, fmt.Errorf("ext4: label %q is longer than 16 bytes", o.Label)
	}
	if o.BlockSize == 0 {
		o.BlockSize = 4096
	}
	switch o.BlockSize {
	case 1024, 2048, 4096:
	default:
		return o, fmt.Errorf("ext4: block size %d is not 1024, 2048 or 4096", o.BlockSize)
	}
	if o.InodeRatio == 0 {
		o.InodeRatio = 16384
	}
	if o.InodeRatio < 1024 {
		return o, fmt.Errorf("ext4: inode ratio %d is below 1024", o.InodeRatio)
	}
	if o.JournalBlocks != 0 && (o.JournalBlocks < minJournalBlocks || o.JournalBlocks > maxJournalBlocks) {
		return o, fmt.Errorf("ext4: journal of %d blocks is outside %d..%d", o.JournalBlocks, minJournalBlocks, maxJournalBlocks)
	}
	if o.ModTime.IsZero() {
		o.ModTime = time.Unix(0, 0)
	}
	if s := o.ModTime.Unix(); s < 0 || s >= maxTime {
		return o, fmt.Errorf("ext4: modification time %v is outside 1970..2446", o.ModTime)
	}
	if size < 0 {
		return o, errors.New("ext4: negative size")
	}
	if o.UUID == ([16]byte{}) {
		h := sha256.Sum256(fmt.Appendf(nil, "piimage ext4 uuid\x00%s\x00%d", o.Label, size))
		copy(o.UUID[:], h[:16])
		o.UUID[6] = o.UUID[6]&0x0f | 0x80 // version 8: custom, RFC 9562
		o.UUID[8] = o.UUID[8]&0x3f | 0x80 // RFC 4122 variant
	}
	if o.HashSeed == ([16]byte{}) {
		h := sha256.Sum256(append([]byte("piimage ext4 hash seed\x00"), o.UUID[:]...))
		copy(o.HashSeed[:], h[:16])
	}
	return o, nil
}

// maxTime is the first second an ext4 inode timestamp with two epoch bits
// cannot hold (year 2446).
const maxTime = 3<<32 + 1<<31

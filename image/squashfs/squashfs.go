// Package squashfs writes deterministic squashfs 4.0 filesystems with zlib
// ("gzip", compressor id 1) compression, the only squashfs compressor the
// Raspberry Pi kernels have.
//
// The output is what the Linux kernel and squashfs-tools read: regular files
// (files smaller than a block packed together into fragment blocks,
// identical files stored once, all-zero blocks stored as holes),
// directories of any size (with directory indexes for large ones), and
// symbolic links. As with mksquashfs without -always-use-fragments, the
// tail of a file larger than a block is stored as its short last block
// (packing those tails too saves a few bytes per image, no more). Every inode is owned by uid 0
// and gid 0 (the id table holds the single id 0), there are no extended
// attributes and no NFS export table.
//
// Output is byte-for-byte reproducible: the same tree and Options give the same
// bytes, and every timestamp comes from Options.ModTime.
package squashfs

import (
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"time"
)

// Defaults for the zero Options fields.
const (
	// DefaultBlockSize is the data block size used when Options.BlockSize is 0.
	DefaultBlockSize = 128 << 10
	// DefaultCompressionLevel is the zlib level used when
	// Options.CompressionLevel is 0.
	DefaultCompressionLevel = 6
)

// ErrTooLarge is returned (wrapped) by Write when the filesystem would not
// fit in Options.MaxSize bytes. The error text names the size needed.
var ErrTooLarge = errors.New("squashfs image larger than MaxSize")

// Options controls Write. The zero value is usable: timestamps at the Unix
// epoch, 128 KiB blocks, no size limit, zlib level 6.
type Options struct {
	// ModTime is the modification time of every inode and the creation
	// time in the superblock; file times in the tree are ignored. The zero
	// time means the Unix epoch. It must lie between 1970 and 2106 (squashfs
	// stores unsigned 32-bit seconds).
	ModTime time.Time
	// BlockSize is the data block size in bytes: a power of two from 4 KiB
	// to 1 MiB. 0 means DefaultBlockSize (128 KiB).
	BlockSize int
	// MaxSize is the largest number of bytes the image may take, padding
	// included (typically the partition size). 0 means no limit. Write
	// never writes at or past MaxSize; it fails with ErrTooLarge instead.
	MaxSize int64
	// CompressionLevel is the zlib level, 1 (fastest) to 9 (smallest).
	// 0 and zlib.DefaultCompression (-1) mean 6: with compress/flate, 9
	// took about six times as long as 6 on an 8 MB Go binary for a 0.1%
	// smaller image. (mksquashfs uses 9.)
	CompressionLevel int
}

// Write builds a squashfs filesystem holding the tree fsys into w, starting
// at offset 0 of w, and returns the number of bytes it occupies.
//
// The tree is walked with fs.WalkDir. Directories, regular files and symbolic
// links (entries whose mode has fs.ModeSymlink; their targets come from
// fs.ReadLink) are stored with the permission bits of their fs.FileMode
// (including setuid, setgid and sticky); other file types are an error. The
// root directory is always stored with mode 0755, whatever the tree says.
// The tree must not change while Write runs.
//
// Like mksquashfs, the image is padded to a multiple of 4 KiB: the superblock
// records the unpadded size, and the returned size includes the padding,
// whose zero bytes Write writes itself. Write only writes to w, never reads
// it, and writes every byte of [0, returned size), so w need not be
// pre-zeroed.
//
// When Options.MaxSize is set and the image would be larger, Write stops
// writing before the limit, still computes the size the tree needs, and
// returns an error wrapping ErrTooLarge that names both sizes.
func Write(w io.WriterAt, fsys fs.FS, opts Options) (int64, error) {
	cfg, err := opts.config()
	if err != nil {
		return 0, err
	}
	if fsys == nil {
		return 0, errors.New("squashfs: nil file system")
	}
	root, count, err := scanTree(fsys)
	if err != nil {
		return 0, err
	}
	b, err := newBuilder(w, fsys, cfg, count)
	if err != nil {
		return 0, err
	}
	return b.build(root)
}

// config is the validated form of Options.
type config struct {
	mtime     uint32
	blockSize int
	blockLog  uint16
	maxSize   int64
	level     int
}

func (o Options) config() (config, error) {
	c := config{maxSize: o.MaxSize, blockSize: o.BlockSize, level: o.CompressionLevel}
	if !o.ModTime.IsZero() {
		s := o.ModTime.Unix()
		if s < 0 || s > math.MaxUint32 {
			return c, fmt.Errorf("squashfs: ModTime %v outside 1970..2106", o.ModTime)
		}
		c.mtime = uint32(s)
	}
	if c.blockSize == 0 {
		c.blockSize = DefaultBlockSize
	}
	if c.blockSize < 4<<10 || c.blockSize > 1<<20 || c.blockSize&(c.blockSize-1) != 0 {
		return c, fmt.Errorf("squashfs: BlockSize %d is not a power of two from 4096 to 1048576", o.BlockSize)
	}
	for 1<<c.blockLog != c.blockSize {
		c.blockLog++
	}
	if c.maxSize < 0 {
		return c, fmt.Errorf("squashfs: negative MaxSize %d", c.maxSize)
	}
	if c.level == 0 || c.level == zlib.DefaultCompression {
		c.level = DefaultCompressionLevel
	}
	if c.level < zlib.BestSpeed || c.level > zlib.BestCompression {
		return c, fmt.Errorf("squashfs: CompressionLevel %d outside 1..9", o.CompressionLevel)
	}
	return c, nil
}

// Package fat32 writes and reads FAT32 file systems for the Raspberry Pi
// boot partition.
//
// Write builds a fresh, byte-reproducible FAT32 volume from an io/fs.FS tree
// in one sequential pass; Open reads one back as an fs.FS. The writer follows
// the FAT specification (fatgen103) and the choices of mkfs.fat 4.2: 512-byte
// sectors, 32 reserved sectors, the boot sector backed up at sector 6 and the
// FSInfo sector at 1 (backup at 7), two mirrored FATs, media 0xF8, the root
// directory as a cluster chain starting at cluster 2.
//
// Names are stored as described in names.go: exact upper-case 8.3 names as
// plain short entries, everything else as VFAT long names with an upper-case
// 8.3 alias (config.txt is found as CONFIG.TXT by readers without long-name
// support, such as a case-insensitive 8.3 match in the Pi firmware).
package fat32

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Options control Write. The zero value is valid.
type Options struct {
	// Label is the volume label, at most 11 characters of the 8.3 set
	// (A-Z 0-9 ! # $ % & ' ( ) - @ ^ _ ` { } ~) or spaces. Lower-case ASCII
	// letters are upper-cased. Empty means "BOOT".
	Label string
	// VolumeID is the volume serial number, which Linux shows as the vfat
	// UUID "XXXX-XXXX". It is written as given (0 is allowed).
	VolumeID uint32
	// ModTime is the creation, modification and access time of every entry,
	// taken in UTC. It is clamped to the FAT range 1980..2107; the zero value
	// gives 1980-01-01 00:00:00.
	ModTime time.Time
	// SectorsPerCluster is the cluster size in 512-byte sectors, a power of
	// two from 1 to 128. 0 chooses as mkfs.fat does: 1 (512 bytes) up to
	// 260 MiB, 8 (4 KiB) up to 8 GiB, larger above, made smaller or larger
	// when needed so the volume has 65525 or more clusters (real FAT32).
	SectorsPerCluster int
	// OEMName is the 8-byte OEM name in the boot sector, printable ASCII.
	// Empty means "MSWIN4.1", the value fatgen103 recommends for compatibility.
	OEMName string
	// HiddenSectors is the number of sectors before the partition (its start
	// LBA), recorded in the boot sector for BIOS boot code. Linux and the Pi
	// firmware ignore it; 0 is fine.
	HiddenSectors uint32
}

const defaultLabel = "BOOT"

// bootInfo returns the fixed boot-sector fields of o, validated.
func (o Options) bootInfo() (bootInfo, error) {
	var bi bootInfo
	label := o.Label
	if label == "" {
		label = defaultLabel
	}
	label = upperASCII(label)
	if len(label) > 11 {
		return bi, fmt.Errorf("label %q is longer than 11 characters", o.Label)
	}
	for i := range len(label) {
		if c := label[i]; c != ' ' && !isShortChar(c) {
			return bi, fmt.Errorf("label %q: character %q is not allowed", o.Label, c)
		}
	}
	if label[0] == ' ' {
		return bi, fmt.Errorf("label %q starts with a space", o.Label)
	}
	copy(bi.label[:], label+strings.Repeat(" ", 11-len(label)))

	oem := o.OEMName
	if oem == "" {
		oem = "MSWIN4.1"
	}
	if len(oem) > 8 {
		return bi, fmt.Errorf("OEM name %q is longer than 8 bytes", oem)
	}
	for i := range len(oem) {
		if oem[i] < 0x20 || oem[i] > 0x7e {
			return bi, fmt.Errorf("OEM name %q is not printable ASCII", oem)
		}
	}
	copy(bi.oem[:], oem+strings.Repeat(" ", 8-len(oem)))
	bi.volumeID = o.VolumeID
	bi.hiddenSectors = o.HiddenSectors
	return bi, nil
}

// stamp is a FAT timestamp.
type stamp struct {
	date, time uint16
	tenths     byte // 10 ms units, 0..199, for the creation time
}

// fatEpoch and fatEnd bound what a FAT timestamp can hold.
var (
	fatEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	fatEnd   = time.Date(2107, 12, 31, 23, 59, 59, 990_000_000, time.UTC)
)

func newStamp(t time.Time) stamp {
	t = t.UTC()
	if t.Before(fatEpoch) {
		t = fatEpoch
	}
	if t.After(fatEnd) {
		t = fatEnd
	}
	return stamp{
		date:   uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day()),
		time:   uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2),
		tenths: byte(t.Second()%2*100 + t.Nanosecond()/10_000_000),
	}
}

// decodeStamp turns a FAT date and time into a UTC time.
func decodeStamp(date, tm uint16) time.Time {
	return time.Date(int(date>>9)+1980, time.Month(date>>5&0x0F), int(date&0x1F),
		int(tm>>11), int(tm>>5&0x3F), int(tm&0x1F)*2, 0, time.UTC)
}

// putEntry encodes a short directory entry into e (32 bytes).
func putEntry(e []byte, sn [11]byte, attr byte, cluster, size uint32, ts stamp) {
	le := binary.LittleEndian
	copy(e[0:11], sn[:])
	e[11] = attr
	e[12] = 0
	e[13] = ts.tenths
	le.PutUint16(e[14:], ts.time)
	le.PutUint16(e[16:], ts.date)
	le.PutUint16(e[18:], ts.date)
	le.PutUint16(e[20:], uint16(cluster>>16))
	le.PutUint16(e[22:], ts.time)
	le.PutUint16(e[24:], ts.date)
	le.PutUint16(e[26:], uint16(cluster))
	le.PutUint32(e[28:], size)
}

// Write builds a fresh FAT32 file system holding the tree fsys into w, which
// stands for a partition of exactly size bytes starting at offset 0 of w.
//
// The tree is walked with fs.WalkDir. Regular files and directories are
// stored; symbolic links and other special files are an error naming the
// path, since FAT cannot hold them. File modes are ignored (FAT has no
// permissions) and every timestamp is opts.ModTime. Names must be valid FAT
// long names (no control characters or "*/:<>?\|, no trailing dot or space)
// and unique ignoring case within a directory.
//
// The volume fills size rounded down to whole 512-byte sectors; data clusters
// are 512 bytes up to 260 MiB and 4 KiB above (see Options.SectorsPerCluster),
// and size must be at least about 33 MiB for FAT32 to have 65525 clusters.
//
// Write never reads from w and writes only inside [0, size), in increasing
// offsets: the boot sectors, both FATs up to the last used entry, then every
// directory and file in walk order, each in contiguous clusters. It assumes
// the bytes of w it does not write read as zero (a fresh sparse file, as the
// image builder provides): the free part of the FATs, the unused reserved
// sectors and the tail of each file's last cluster are left unwritten.
func Write(w io.WriterAt, size int64, fsys fs.FS, opts Options) error {
	bi, err := opts.bootInfo()
	if err != nil {
		return fmt.Errorf("writing FAT32: %w", err)
	}
	l, err := newLayout(size, opts.SectorsPerCluster)
	if err != nil {
		return fmt.Errorf("writing FAT32: %w", err)
	}
	return write(w, l, bi, fsys, newStamp(opts.ModTime))
}

// write builds the volume with geometry l; Write has validated everything else.
func write(w io.WriterAt, l layout, bi bootInfo, fsys fs.FS, ts stamp) error {
	root, err := readTree(fsys)
	if err != nil {
		return fmt.Errorf("writing FAT32: %w", err)
	}
	p, err := plan(root, l)
	if err != nil {
		return fmt.Errorf("writing FAT32: %w", err)
	}
	bi.freeClusters = l.clusters - p.used
	bi.nextFree = rootCluster + p.used
	if p.used == l.clusters {
		bi.nextFree = 0xFFFFFFFF
	}
	if _, err := w.WriteAt(l.reservedRegion(bi), 0); err != nil {
		return fmt.Errorf("writing FAT32 boot sectors: %w", err)
	}
	fat := p.fat(l)
	for i := range numFATs {
		if _, err := w.WriteAt(fat, l.fatOffset(i)); err != nil {
			return fmt.Errorf("writing FAT32 FAT %d: %w", i+1, err)
		}
	}
	dw := &dataWriter{w: w, fsys: fsys, l: l, ts: ts, label: bi.label}
	return dw.writeNodes(p.order)
}

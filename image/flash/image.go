package flash

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/ext4"
	"github.com/piimage/piimage/image/fat32"
)

// pageSize is the granularity of an Image's in-memory changes.
const pageSize = 4096

// Image is what Write puts on a card: an image file with in-memory changes
// on top (a replaced overlay, a rebuilt data partition). The file itself is
// never modified. An Image is safe for concurrent reads; changes must not
// run concurrently with anything else.
type Image struct {
	file     *os.File // nil when made by NewImage
	base     io.ReaderAt
	baseSize int64 // bytes of base that show; beyond them the image reads zeros
	size     int64

	mu    sync.RWMutex
	pages map[int64]*[pageSize]byte // changed pages by index
}

// OpenImage opens the image file at path for reading.
func OpenImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening image: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("opening image %s: not a regular file", path)
	}
	im := NewImage(f, st.Size())
	im.file = f
	return im, nil
}

// NewImage returns an Image of the size bytes of r.
func NewImage(r io.ReaderAt, size int64) *Image {
	return &Image{base: r, baseSize: size, size: size, pages: make(map[int64]*[pageSize]byte)}
}

// Close closes the image file opened by OpenImage.
func (im *Image) Close() error {
	if im.file == nil {
		return nil
	}
	return im.file.Close()
}

// Size returns the image size in bytes.
func (im *Image) Size() int64 { return im.size }

// ReadAt reads the image with its changes.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("flash image: negative offset")
	}
	if off >= im.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), im.size-off)
	im.mu.RLock()
	defer im.mu.RUnlock()
	// Runs of unchanged pages are read from the base in one call.
	runStart := int64(-1)
	flush := func(end int64) error {
		if runStart < 0 {
			return nil
		}
		err := im.readBase(p[runStart-off:end-off], runStart)
		runStart = -1
		return err
	}
	for pos := off; pos < off+want; {
		pg := pos / pageSize
		next := min((pg+1)*pageSize, off+want)
		if b := im.pages[pg]; b != nil {
			if err := flush(pos); err != nil {
				return 0, err
			}
			copy(p[pos-off:next-off], b[pos-pg*pageSize:])
		} else if runStart < 0 {
			runStart = pos
		}
		pos = next
	}
	if err := flush(off + want); err != nil {
		return 0, err
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// readBase fills p from the base at off, with zeros past baseSize.
func (im *Image) readBase(p []byte, off int64) error {
	n := int64(0)
	if off < im.baseSize {
		n = min(int64(len(p)), im.baseSize-off)
		if k, err := im.base.ReadAt(p[:n], off); err != nil && !(errors.Is(err, io.EOF) && int64(k) == n) {
			return fmt.Errorf("reading image at %d: %w", off, err)
		}
	}
	clear(p[n:])
	return nil
}

// WriteAt changes the image in memory.
func (im *Image) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > im.size {
		return 0, fmt.Errorf("flash image: write of %d bytes at %d outside the %d-byte image", len(p), off, im.size)
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	for n := int64(0); n < int64(len(p)); {
		pos := off + n
		pg := pos / pageSize
		b := im.pages[pg]
		if b == nil {
			b = new([pageSize]byte)
			lo := pg * pageSize
			if err := im.readBase(b[:min(pageSize, im.size-lo)], lo); err != nil {
				return int(n), err
			}
			im.pages[pg] = b
		}
		n += int64(copy(b[pos-pg*pageSize:], p[n:]))
	}
	return len(p), nil
}

// Changed returns the byte ranges of the image that differ from its file,
// page-aligned (a grown image's new tail counts as changed only where
// written).
func (im *Image) Changed() []Extent {
	im.mu.RLock()
	idx := make([]int64, 0, len(im.pages))
	for pg := range im.pages {
		idx = append(idx, pg)
	}
	im.mu.RUnlock()
	slices.Sort(idx)
	var out []Extent
	for _, pg := range idx {
		out = addExtent(out, Extent{pg * pageSize, pageSize})
	}
	return out
}

// mbr reads the image's partition table.
func (im *Image) mbr() (*image.MBR, error) {
	b := make([]byte, image.SectorSize)
	if _, err := im.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("reading the partition table: %w", err)
	}
	return image.ParseMBR(b)
}

// partition returns partition n (1-based) as an extent, checked against
// the image size.
func (im *Image) partition(n int) (Extent, error) {
	m, err := im.mbr()
	if err != nil {
		return Extent{}, err
	}
	p := m.Partitions[n-1]
	e := Extent{int64(p.Start) * image.SectorSize, int64(p.Sectors) * image.SectorSize}
	if p.Type == image.TypeEmpty || e.Size == 0 {
		return Extent{}, fmt.Errorf("the image has no partition %d", n)
	}
	if e.Offset+e.Size > im.size {
		return Extent{}, fmt.Errorf("partition %d (%d bytes at %d) ends past the %d-byte image", n, e.Size, e.Offset, im.size)
	}
	return e, nil
}

// boot opens the FAT32 boot partition.
func (im *Image) boot() (*fat32.FS, Extent, error) {
	e, err := im.partition(image.PartBoot)
	if err != nil {
		return nil, e, err
	}
	v, err := fat32.Open(io.NewSectionReader(im, e.Offset, e.Size), e.Size)
	if err != nil {
		return nil, e, fmt.Errorf("reading the boot partition: %w", err)
	}
	return v, e, nil
}

// BootFile returns the contents of a file on the boot partition.
func (im *Image) BootFile(name string) ([]byte, error) {
	v, _, err := im.boot()
	if err != nil {
		return nil, err
	}
	b, err := v.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s from the boot partition: %w", name, err)
	}
	return b, nil
}

// ReplaceBootFile replaces an existing file on the boot partition (such as
// node.yaml) with data, changing only its clusters, FAT entries, directory
// entry and the FSInfo counts (see fat32.FS.Replace).
func (im *Image) ReplaceBootFile(name string, data []byte) error {
	v, e, err := im.boot()
	if err != nil {
		return err
	}
	if err := v.Replace(io.NewOffsetWriter(im, e.Offset), name, data, time.Time{}); err != nil {
		return fmt.Errorf("replacing %s on the boot partition: %w", name, err)
	}
	return nil
}

// MinimalDataInodes is the number of inodes in use on a data partition that
// holds nothing but the overlay's last good copy: the 11 reserved inodes
// (lost+found included), the piimage folder and the file.
const MinimalDataInodes = 13

// DataNotEmptyError says the data partition holds more than the overlay,
// so it cannot be rebuilt without losing files.
type DataNotEmptyError struct {
	UsedInodes int64
}

func (e *DataNotEmptyError) Error() string {
	return fmt.Sprintf("the data partition holds %d files and folders besides the overlay (a web root?); rebuilding it would lose them, and piimage cannot read ext4 to copy them over",
		e.UsedInodes-MinimalDataInodes)
}

// ReplaceData rebuilds the ext4 data partition (partition 4, the last one)
// as a fresh filesystem of the tree fsys, keeping the old one's label, UUID,
// directory hash seed, timestamp and block size. end is where the partition
// shall end: 0 keeps its size; a larger value grows it (and the image) to
// end rounded down to image.Align, and the partition table follows.
//
// It refuses, with a *DataNotEmptyError, a data partition that holds more
// than MinimalDataInodes inodes: there is no ext4 reader to carry its files
// over. The old partition's bytes stop showing through: the new filesystem
// is the only content of the partition, and Extents then lists only its
// allocated blocks, so the card's free blocks are left as they were.
func (im *Image) ReplaceData(end int64, fsys fs.FS) error {
	m, err := im.mbr()
	if err != nil {
		return err
	}
	e, err := im.partition(image.PartData)
	if err != nil {
		return err
	}
	if e.Offset+e.Size != im.size {
		return fmt.Errorf("the data partition ends at %d, not at the image end %d: cannot resize it", e.Offset+e.Size, im.size)
	}
	sb, err := readSuperblock(io.NewSectionReader(im, e.Offset, e.Size))
	if err != nil {
		return fmt.Errorf("reading the data partition: %w", err)
	}
	if used := sb.usedInodes(); used > MinimalDataInodes {
		return &DataNotEmptyError{UsedInodes: used}
	}
	newEnd := im.size
	if end != 0 {
		newEnd = end / image.Align * image.Align
		if newEnd < im.size {
			return fmt.Errorf("cannot shrink the data partition: the image ends at %d MiB, asked for %d MiB", im.size>>20, newEnd>>20)
		}
	}
	newLen := newEnd - e.Offset
	if newLen/image.SectorSize > 0xFFFFFFFF {
		return fmt.Errorf("a data partition of %d bytes does not fit an MBR (2 TiB at most)", newLen)
	}
	im.mu.Lock()
	for pg := range im.pages {
		if pg*pageSize+pageSize > e.Offset {
			delete(im.pages, pg)
		}
	}
	im.baseSize = min(im.baseSize, e.Offset)
	im.size = newEnd
	im.mu.Unlock()
	opts := ext4.Options{
		Label:     sb.label,
		UUID:      sb.uuid,
		HashSeed:  sb.hashSeed,
		ModTime:   sb.mkfsTime,
		BlockSize: int(sb.blockSize),
	}
	if err := ext4.Write(io.NewOffsetWriter(im, e.Offset), newLen, fsys, opts); err != nil {
		return fmt.Errorf("writing the new data partition: %w", err)
	}
	m.Partitions[image.PartData-1].Sectors = uint32(newLen / image.SectorSize)
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	if _, err := im.WriteAt(b, 0); err != nil {
		return err
	}
	return nil
}

// Extents returns the byte ranges of the image that a card must hold, in
// order: everything, except the free blocks of an ext4 data partition
// (partition 4), whose contents no reader looks at. An image without a
// partition table or an ext4 data partition of a kind dataExtents cannot
// map is returned whole.
func (im *Image) Extents() []Extent {
	whole := []Extent{{0, im.size}}
	e, err := im.partition(image.PartData)
	if err != nil {
		return whole
	}
	used, err := ext4Used(io.NewSectionReader(im, e.Offset, e.Size), e.Size)
	if err != nil {
		return whole
	}
	out := []Extent{{0, e.Offset}}
	for _, u := range used {
		out = addExtent(out, Extent{e.Offset + u.Offset, u.Size})
	}
	if end := e.Offset + e.Size; end < im.size {
		out = addExtent(out, Extent{end, im.size - end})
	}
	return out
}

// Extent is a byte range.
type Extent struct {
	Offset, Size int64
}

// End returns the offset just past the extent.
func (e Extent) End() int64 { return e.Offset + e.Size }

// addExtent appends e to a sorted list, merging it with the last extent
// when they touch. e must not start before the last extent.
func addExtent(list []Extent, e Extent) []Extent {
	if e.Size <= 0 {
		return list
	}
	if k := len(list) - 1; k >= 0 && list[k].End() >= e.Offset {
		list[k].Size = max(list[k].End(), e.End()) - list[k].Offset
		return list
	}
	return append(list, e)
}

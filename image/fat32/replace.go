package fat32

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"
)

// Replace replaces the contents of the regular file name with data, in
// place: the file keeps its directory entries (long name included) and as
// many of its clusters as the new contents need; clusters are added from the
// free ones (after the file's last cluster first) or given back. Replace
// writes through w, which must write the same volume that f reads (so that f
// sees the result): the file's clusters (whole clusters, the tail of the last
// one zeroed), the changed 32-bit entries of every mirrored FAT (keeping their
// reserved top four bits), the size and first cluster of the short directory
// entry, its modification date when mtime is not zero, and the FSInfo free
// count and next-free hint when the cluster count changed. Nothing else of
// the volume is written.
//
// Replace is meant for images that nothing has mounted: it is not atomic,
// and a crash in the middle leaves the file half written. It must not run
// concurrently with other uses of f.
func (f *FS) Replace(w io.WriterAt, name string, data []byte, mtime time.Time) error {
	if int64(len(data)) > maxFileSize {
		return &fs.PathError{Op: "replace", Path: name, Err: fmt.Errorf("%d bytes is more than FAT32 allows", len(data))}
	}
	e, err := f.lookup("replace", name)
	if err != nil {
		return err
	}
	if e.isDir() || name == "." {
		return &fs.PathError{Op: "replace", Path: name, Err: errors.New("is a directory")}
	}
	geo, err := f.readGeometry()
	if err != nil {
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old, err := f.clusterList(e)
	if err != nil {
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	cs := f.clusterSize()
	need := (int64(len(data)) + cs - 1) / cs
	chain, err := f.resizeChain(old, int(need))
	if err != nil {
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	// Data first, then the FAT, then the directory entry: the order a
	// filesystem driver uses to keep a crash from exposing unwritten clusters.
	if err := f.writeClusters(w, chain, data); err != nil {
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	changed := f.relink(old, chain)
	if err := f.writeFATEntries(w, geo, changed); err != nil {
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	first := uint32(0)
	if len(chain) > 0 {
		first = chain[0]
	}
	if err := writeEntry(w, e.off, first, uint32(len(data)), mtime); err != nil {
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	if len(chain) != len(old) {
		if err := f.updateFSInfo(w, geo, len(chain)-len(old), chain); err != nil {
			return &fs.PathError{Op: "replace", Path: name, Err: err}
		}
	}
	clear(f.dirs) // directory entries changed; read them again
	return nil
}

// geometry is what Replace needs of the boot sector beyond what Open keeps.
type geometry struct {
	fatOffs []int64 // byte offsets of the FATs to update
	fsInfo  int64   // byte offset of the FSInfo sector, -1 when none
}

func (f *FS) readGeometry() (geometry, error) {
	var b [512]byte
	if _, err := f.r.ReadAt(b[:], 0); err != nil {
		return geometry{}, fmt.Errorf("reading the boot sector: %w", err)
	}
	le := binary.LittleEndian
	reserved := int64(le.Uint16(b[14:]))
	nfats := int64(b[16])
	fatSize := int64(le.Uint32(b[36:]))
	flags := le.Uint16(b[40:])
	info := int64(le.Uint16(b[48:]))
	g := geometry{fsInfo: -1}
	if flags&0x80 != 0 {
		// Mirroring is off: only the active FAT is in use.
		g.fatOffs = []int64{(reserved + int64(flags&0x0F)*fatSize) * f.bps}
	} else {
		for i := range nfats {
			g.fatOffs = append(g.fatOffs, (reserved+i*fatSize)*f.bps)
		}
	}
	if info != 0 && info != 0xFFFF && info < reserved {
		g.fsInfo = info * f.bps
	}
	return g, nil
}

// clusterList returns every cluster of e's chain, up to its end mark.
func (f *FS) clusterList(e dirent) ([]uint32, error) {
	if e.cluster == 0 {
		if e.size != 0 {
			return nil, fmt.Errorf("entry of %d bytes has no clusters", e.size)
		}
		return nil, nil
	}
	var out []uint32
	seen := make(map[uint32]bool)
	for c := e.cluster; ; {
		if !f.valid(c) {
			return nil, fmt.Errorf("cluster chain from %d: bad cluster %d", e.cluster, c)
		}
		if seen[c] {
			return nil, fmt.Errorf("cluster chain from %d: loops at %d", e.cluster, c)
		}
		seen[c] = true
		out = append(out, c)
		next := f.fat[c]
		if next >= 0x0FFFFFF8 {
			break
		}
		c = next
	}
	if cs := f.clusterSize(); int64(len(out))*cs < int64(e.size) {
		return nil, fmt.Errorf("cluster chain from %d: %d clusters hold less than the %d bytes of the entry", e.cluster, len(out), e.size)
	}
	return out, nil
}

// resizeChain returns the clusters for a file of need clusters: a prefix of
// old, plus free clusters, preferring the ones right after the last.
func (f *FS) resizeChain(old []uint32, need int) ([]uint32, error) {
	if need <= len(old) {
		return old[:need], nil
	}
	chain := slices.Clone(old)
	start := uint32(2)
	if len(old) > 0 {
		start = old[len(old)-1] + 1
	}
	for i := uint32(0); i < f.clusters && len(chain) < need; i++ {
		c := 2 + (start-2+i)%f.clusters
		if f.fat[c] == 0 {
			chain = append(chain, c)
		}
	}
	if len(chain) < need {
		return nil, fmt.Errorf("volume full: %d more clusters needed", need-len(chain))
	}
	return chain, nil
}

// writeClusters writes data over chain, whole clusters, in runs.
func (f *FS) writeClusters(w io.WriterAt, chain []uint32, data []byte) error {
	cs := f.clusterSize()
	for i := 0; i < len(chain); {
		j := i + 1
		for j < len(chain) && chain[j] == chain[j-1]+1 {
			j++
		}
		buf := make([]byte, int64(j-i)*cs)
		lo := min(int64(i)*cs, int64(len(data)))
		hi := min(int64(j)*cs, int64(len(data)))
		copy(buf, data[lo:hi])
		off := f.dataOff + int64(chain[i]-2)*cs
		if _, err := w.WriteAt(buf, off); err != nil {
			return fmt.Errorf("writing clusters %d-%d: %w", chain[i], chain[j-1], err)
		}
		i = j
	}
	return nil
}

// relink updates f.fat for the new chain (freeing the clusters of old it
// dropped) and returns the changed entries.
func (f *FS) relink(old, chain []uint32) []uint32 {
	want := make(map[uint32]uint32, len(old)+len(chain))
	for _, c := range old {
		want[c] = 0
	}
	for i, c := range chain {
		if i+1 < len(chain) {
			want[c] = chain[i+1]
		} else {
			want[c] = fatEOC
		}
	}
	var changed []uint32
	for c, v := range want {
		if f.fat[c] != v {
			f.fat[c] = v
			changed = append(changed, c)
		}
	}
	slices.Sort(changed)
	return changed
}

// writeFATEntries writes f.fat[c] for every changed c into each FAT,
// keeping the entry's reserved top four bits.
func (f *FS) writeFATEntries(w io.WriterAt, g geometry, changed []uint32) error {
	var raw [4]byte
	for _, base := range g.fatOffs {
		for _, c := range changed {
			off := base + int64(c)*4
			if _, err := f.r.ReadAt(raw[:], off); err != nil {
				return fmt.Errorf("reading FAT entry %d: %w", c, err)
			}
			v := binary.LittleEndian.Uint32(raw[:])&^fatMask | f.fat[c]
			binary.LittleEndian.PutUint32(raw[:], v)
			if _, err := w.WriteAt(raw[:], off); err != nil {
				return fmt.Errorf("writing FAT entry %d: %w", c, err)
			}
		}
	}
	return nil
}

// writeEntry updates the first cluster, size and (when mtime is set) the
// modification and access dates of the short entry at off.
func writeEntry(w io.WriterAt, off int64, cluster, size uint32, mtime time.Time) error {
	le := binary.LittleEndian
	if mtime.IsZero() {
		// Only the cluster high word, cluster low word and size change.
		var hi [2]byte
		le.PutUint16(hi[:], uint16(cluster>>16))
		if _, err := w.WriteAt(hi[:], off+20); err != nil {
			return fmt.Errorf("writing the directory entry: %w", err)
		}
		var lo [6]byte
		le.PutUint16(lo[0:], uint16(cluster))
		le.PutUint32(lo[2:], size)
		if _, err := w.WriteAt(lo[:], off+26); err != nil {
			return fmt.Errorf("writing the directory entry: %w", err)
		}
		return nil
	}
	ts := newStamp(mtime)
	var b [12]byte // bytes 20..31 of the entry
	le.PutUint16(b[0:], uint16(cluster>>16))
	le.PutUint16(b[2:], ts.time)
	le.PutUint16(b[4:], ts.date)
	le.PutUint16(b[6:], uint16(cluster))
	le.PutUint32(b[8:], size)
	if _, err := w.WriteAt(b[:], off+20); err != nil {
		return fmt.Errorf("writing the directory entry: %w", err)
	}
	var acc [2]byte
	le.PutUint16(acc[:], ts.date)
	if _, err := w.WriteAt(acc[:], off+18); err != nil {
		return fmt.Errorf("writing the directory entry: %w", err)
	}
	return nil
}

// updateFSInfo adjusts the FSInfo free-cluster count by -delta and points
// the next-free hint after the chain, when the sector is valid and its
// count is known.
func (f *FS) updateFSInfo(w io.WriterAt, g geometry, delta int, chain []uint32) error {
	if g.fsInfo < 0 {
		return nil
	}
	b := make([]byte, 512)
	if _, err := f.r.ReadAt(b, g.fsInfo); err != nil {
		return fmt.Errorf("reading FSInfo: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != 0x41615252 || le.Uint32(b[484:]) != 0x61417272 {
		return nil
	}
	var out [8]byte
	free := le.Uint32(b[488:])
	if free != 0xFFFFFFFF {
		free = uint32(int64(free) - int64(delta))
	}
	next := le.Uint32(b[492:])
	if delta > 0 && len(chain) > 0 {
		next = chain[len(chain)-1] + 1
		if !f.valid(next) {
			next = 2
		}
	}
	le.PutUint32(out[0:], free)
	le.PutUint32(out[4:], next)
	if _, err := w.WriteAt(out[:], g.fsInfo+488); err != nil {
		return fmt.Errorf("writing FSInfo: %w", err)
	}
	return nil
}

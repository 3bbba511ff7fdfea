package fat32

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
)

// FS is a read-only view of a FAT32 volume, opened with Open. It implements
// fs.FS, fs.ReadDirFS, fs.ReadFileFS and fs.StatFS. Names are looked up
// ignoring case, by long name or by 8.3 alias. It is safe for concurrent use.
//
// FS keeps, for every entry, the byte offset of its directory entry and its
// cluster chain, so that a file can later be replaced in place (rewrite its
// clusters, FAT chain, directory entry and the FSInfo counts).
type FS struct {
	r        io.ReaderAt
	bps      int64  // bytes per sector
	spc      int64  // sectors per cluster
	dataOff  int64  // byte offset of cluster 2
	clusters uint32 // data clusters, 2..clusters+1
	fat      []uint32
	root     uint32
	label    string
	volumeID uint32

	mu   sync.Mutex
	dirs map[uint32][]dirent // parsed directories by first cluster
}

var (
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ io.ReaderAt   = (*file)(nil)
	_ io.Seeker     = (*file)(nil)
)

// dirent is one parsed directory entry.
type dirent struct {
	name    string // long name, or the 8.3 name when there is none
	short   [11]byte
	attr    byte
	cluster uint32
	size    uint32
	mtime   time.Time
	off     int64 // byte offset of the short entry on the volume
}

func (e dirent) isDir() bool { return e.attr&attrDir != 0 }

// maxFATBytes bounds the FAT Open loads; a FAT32 FAT is never larger.
const maxFATBytes = (maxClusters + 2) * 4

// Open reads the FAT32 volume of size bytes in r. It checks the boot sector
// and loads the FAT; directories are read when first used.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	var b [512]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return nil, fmt.Errorf("reading the FAT32 boot sector: %w", err)
	}
	le := binary.LittleEndian
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil, errors.New("opening FAT32: no boot sector signature")
	}
	bps := int64(le.Uint16(b[11:]))
	spc := int64(b[13])
	reserved := int64(le.Uint16(b[14:]))
	nfats := int64(b[16])
	rootEntries := le.Uint16(b[17:])
	total := int64(le.Uint16(b[19:]))
	if total == 0 {
		total = int64(le.Uint32(b[32:]))
	}
	fat16 := le.Uint16(b[22:])
	fatSize := int64(le.Uint32(b[36:]))
	flags := le.Uint16(b[40:])
	root := le.Uint32(b[44:])
	switch {
	case bps != 512 && bps != 1024 && bps != 2048 && bps != 4096:
		return nil, fmt.Errorf("opening FAT32: bad sector size %d", bps)
	case spc == 0 || spc&(spc-1) != 0:
		return nil, fmt.Errorf("opening FAT32: bad sectors per cluster %d", spc)
	case reserved == 0 || nfats == 0:
		return nil, errors.New("opening FAT32: no reserved sectors or no FAT")
	case rootEntries != 0 || fat16 != 0 || fatSize == 0:
		return nil, errors.New("opening FAT32: not a FAT32 volume (FAT12/16 fields set)")
	case total*bps > size:
		return nil, fmt.Errorf("opening FAT32: volume of %d bytes is larger than the %d given", total*bps, size)
	}
	dataSec := reserved + nfats*fatSize
	if dataSec >= total {
		return nil, errors.New("opening FAT32: no room for data after the FATs")
	}
	clusters := (total - dataSec) / spc
	clusters = min(clusters, fatSize*bps/4-2, maxClusters)
	f := &FS{
		r: r, bps: bps, spc: spc, dataOff: dataSec * bps, clusters: uint32(clusters),
		root: root, volumeID: le.Uint32(b[67:]), dirs: make(map[uint32][]dirent),
	}
	if b[66] == 0x29 {
		f.label = strings.TrimRight(string(b[71:82]), " ")
	}
	active := int64(0)
	if flags&0x80 != 0 {
		active = int64(flags & 0x0F)
		if active >= nfats {
			return nil, fmt.Errorf("opening FAT32: active FAT %d of %d", active, nfats)
		}
	}
	if !f.valid(root) {
		return nil, fmt.Errorf("opening FAT32: bad root cluster %d", root)
	}
	if err := f.loadFAT((reserved + active*fatSize) * bps); err != nil {
		return nil, err
	}
	if _, err := f.dir(root); err != nil {
		return nil, fmt.Errorf("opening FAT32: root directory: %w", err)
	}
	return f, nil
}

// loadFAT reads the FAT entries for all clusters, in chunks so a lying boot
// sector cannot make it allocate more than r holds.
func (f *FS) loadFAT(off int64) error {
	n := int64(f.clusters) + 2
	f.fat = make([]uint32, 0, min(n, 1<<18))
	chunk := make([]byte, min(n*4, 1<<20))
	for done := int64(0); done < n; {
		k := min(n-done, int64(len(chunk)/4))
		if _, err := f.r.ReadAt(chunk[:k*4], off+done*4); err != nil {
			return fmt.Errorf("reading the FAT: %w", err)
		}
		for i := range k {
			f.fat = append(f.fat, binary.LittleEndian.Uint32(chunk[i*4:])&fatMask)
		}
		done += k
	}
	return nil
}

func (f *FS) clusterSize() int64 { return f.bps * f.spc }

// valid reports whether c is a data cluster of the volume.
func (f *FS) valid(c uint32) bool { return c >= 2 && c < f.clusters+2 }

// extent is a run of contiguous bytes on the volume.
type extent struct{ off, n int64 }

// chain follows the cluster chain from start and returns it as runs of
// contiguous clusters. want > 0 stops after want clusters (a file); want 0
// reads to the end-of-chain mark, at most limit clusters (a directory).
func (f *FS) chain(start uint32, want, limit int64) ([]extent, error) {
	cs := f.clusterSize()
	var runs []extent
	c := start
	for count := int64(0); ; count++ {
		if want > 0 && count == want {
			return runs, nil
		}
		if !f.valid(c) {
			return nil, fmt.Errorf("cluster chain from %d: bad cluster %d", start, c)
		}
		if count >= limit || count >= int64(f.clusters) {
			return nil, fmt.Errorf("cluster chain from %d: longer than %d clusters (loop?)", start, limit)
		}
		off := f.dataOff + int64(c-2)*cs
		if k := len(runs) - 1; k >= 0 && runs[k].off+runs[k].n == off {
			runs[k].n += cs
		} else {
			runs = append(runs, extent{off, cs})
		}
		next := f.fat[c]
		if next >= 0x0FFFFFF8 {
			if want > 0 && count+1 < want {
				return nil, fmt.Errorf("cluster chain from %d: ends after %d of %d clusters", start, count+1, want)
			}
			return runs, nil
		}
		c = next
	}
}

// maxDirBytes is the largest directory we read (the FAT limit of 65536 entries).
const maxDirBytes = maxDirEntries * dirEntrySize

// dir returns the parsed entries of the directory starting at cluster c.
func (f *FS) dir(c uint32) ([]dirent, error) {
	f.mu.Lock()
	ents, ok := f.dirs[c]
	f.mu.Unlock()
	if ok {
		return ents, nil
	}
	runs, err := f.chain(c, 0, maxDirBytes/f.clusterSize()+1)
	if err != nil {
		return nil, err
	}
	var p dirParser
	for _, r := range runs {
		buf := make([]byte, r.n)
		if _, err := f.r.ReadAt(buf, r.off); err != nil {
			return nil, fmt.Errorf("reading directory at cluster %d: %w", c, err)
		}
		if p.parse(buf, r.off) {
			break
		}
	}
	f.mu.Lock()
	f.dirs[c] = p.ents
	f.mu.Unlock()
	return p.ents, nil
}

// dirParser assembles entries from the 32-byte records of a directory,
// joining long-name records to the short entry that follows them.
type dirParser struct {
	ents  []dirent
	lfn   []uint16
	seq   int  // sequence number expected next, 0 when no long name is pending
	sum   byte // checksum of the pending long name
	ready bool // a complete long name waits for its short entry
	label string
}

// parse consumes buf, which starts at byte off of the volume, and reports
// whether it saw the end-of-directory mark.
func (p *dirParser) parse(buf []byte, off int64) bool {
	le := binary.LittleEndian
	for i := 0; i+dirEntrySize <= len(buf); i += dirEntrySize {
		e := buf[i : i+dirEntrySize]
		switch {
		case e[0] == 0x00:
			return true
		case e[0] == 0xE5:
			p.reset()
			continue
		case e[11]&0x3F == attrLFN:
			p.longRecord(e)
			continue
		}
		var sn [11]byte
		copy(sn[:], e[:11])
		longName, hasLong := p.take(sn)
		attr := e[11]
		if attr&attrVolume != 0 {
			if attr&attrDir == 0 && p.label == "" {
				p.label = strings.TrimRight(string(sn[:]), " ")
			}
			continue
		}
		if sn[0] == '.' {
			continue // "." and ".."
		}
		name := displayShort(sn, e[12])
		if hasLong {
			name = longName
		}
		if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
			continue
		}
		p.ents = append(p.ents, dirent{
			name:    name,
			short:   sn,
			attr:    attr,
			cluster: uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:])),
			size:    le.Uint32(e[28:]),
			mtime:   decodeStamp(le.Uint16(e[24:]), le.Uint16(e[22:])),
			off:     off + int64(i),
		})
	}
	return false
}

func (p *dirParser) reset() { p.seq, p.ready, p.lfn = 0, false, p.lfn[:0] }

// longRecord takes one long-name record.
func (p *dirParser) longRecord(e []byte) {
	ord := int(e[0] & 0x3F)
	if e[0]&lfnLast != 0 {
		p.reset()
		if ord == 0 || ord > 20 {
			return
		}
		p.seq, p.sum = ord, e[13]
		p.lfn = append(p.lfn[:0], make([]uint16, ord*charsPerLFN)...)
	} else if ord != p.seq || p.seq == 0 || e[13] != p.sum || p.ready {
		p.reset()
		return
	}
	for k, o := range lfnCharOffset {
		p.lfn[(ord-1)*charsPerLFN+k] = binary.LittleEndian.Uint16(e[o:])
	}
	p.seq--
	p.ready = p.seq == 0
}

// take returns the pending long name if it belongs to short name sn.
func (p *dirParser) take(sn [11]byte) (string, bool) {
	defer p.reset()
	if !p.ready || checksum(sn) != p.sum {
		return "", false
	}
	u := p.lfn
	if i := slices.Index(u, 0); i >= 0 {
		u = u[:i]
	}
	return string(utf16.Decode(u)), true
}

// Label returns the volume label: the root directory's label entry, or the
// boot sector's when there is none.
func (f *FS) Label() string {
	var p dirParser
	runs, err := f.chain(f.root, 1, 1)
	if err == nil {
		buf := make([]byte, runs[0].n)
		if _, err := f.r.ReadAt(buf, runs[0].off); err == nil {
			p.parse(buf, runs[0].off)
		}
	}
	if p.label != "" {
		return p.label
	}
	return f.label
}

// VolumeID returns the volume serial number from the boot sector.
func (f *FS) VolumeID() uint32 { return f.volumeID }

// lookup finds the entry for a valid fs path. The root has cluster f.root
// and the directory attribute.
func (f *FS) lookup(op, name string) (dirent, error) {
	if !fs.ValidPath(name) {
		return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	cur := dirent{name: ".", attr: attrDir, cluster: f.root}
	if name == "." {
		return cur, nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		if !cur.isDir() {
			return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		ents, err := f.dir(f.dirCluster(cur))
		if err != nil {
			return dirent{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		found := false
		for _, e := range ents {
			if strings.EqualFold(e.name, elem) || strings.EqualFold(displayShort(e.short, 0), elem) {
				cur, found = e, true
				break
			}
		}
		if !found {
			return dirent{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
	}
	return cur, nil
}

// dirCluster is the first cluster of directory e; 0 means the root.
func (f *FS) dirCluster(e dirent) uint32 {
	if e.cluster == 0 {
		return f.root
	}
	return e.cluster
}

// Open opens the named file or directory for reading. Regular files also
// implement io.ReaderAt and io.Seeker; directories fs.ReadDirFile.
func (f *FS) Open(name string) (fs.File, error) {
	e, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if name == "." {
		e.name = "."
	}
	if e.isDir() {
		ents, err := f.dir(f.dirCluster(e))
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{info: fileInfo{e}, ents: ents}, nil
	}
	var runs []extent
	if e.size > 0 {
		cs := f.clusterSize()
		runs, err = f.chain(e.cluster, (int64(e.size)+cs-1)/cs, int64(f.clusters))
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return &file{r: f.r, info: fileInfo{e}, runs: runs}, nil
}

// ReadDir returns the entries of the named directory sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	ents, err := f.dir(f.dirCluster(e))
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(ents))
	for i, d := range ents {
		out[i] = fs.FileInfoToDirEntry(fileInfo{d})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Stat returns the FileInfo of the named file or directory.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	if name == "." {
		e.name = "."
	}
	return fileInfo{e}, nil
}

// ReadFile returns the contents of the named file.
func (f *FS) ReadFile(name string) ([]byte, error) {
	fh, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	rf, ok := fh.(*file)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	buf := make([]byte, rf.info.e.size)
	if _, err := rf.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return buf, nil
}

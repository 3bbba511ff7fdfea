package fat32

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// maxDirEntries is the most 32-byte entries a FAT directory may hold.
const maxDirEntries = 65536

// maxFileSize is the largest file FAT32 can hold.
const maxFileSize = 0xFFFFFFFF

// node is one file or directory of the tree being written.
type node struct {
	name     string // long name; "" for the root
	path     string // path in the source fs.FS
	dir      bool
	size     int64 // regular files
	parent   *node
	children []*node // lexical order (fs.WalkDir order)

	short [11]byte
	long  bool // needs long-name entries

	cluster   uint32 // first cluster, 0 for empty files
	nclusters uint32
}

// readTree walks fsys into a tree of nodes.
func readTree(fsys fs.FS) (*node, error) {
	var root *node
	dirs := make(map[string]*node)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			if !d.IsDir() {
				return &fs.PathError{Op: "walk", Path: p, Err: errors.New("root is not a directory")}
			}
			root = &node{path: p, dir: true}
			dirs[p] = root
			return nil
		}
		parent := dirs[path.Dir(p)]
		if parent == nil {
			return &fs.PathError{Op: "walk", Path: p, Err: errors.New("parent directory not visited")}
		}
		n := &node{name: d.Name(), path: p, parent: parent}
		if err := validateName(n.name); err != nil {
			return &fs.PathError{Op: "add", Path: p, Err: err}
		}
		switch t := d.Type(); {
		case d.IsDir():
			n.dir = true
			dirs[p] = n
		case t&fs.ModeSymlink != 0:
			return &fs.PathError{Op: "add", Path: p, Err: errors.New("symbolic links cannot be stored on FAT")}
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				return &fs.PathError{Op: "add", Path: p, Err: fmt.Errorf("file type %v cannot be stored on FAT", info.Mode().Type())}
			}
			n.size = info.Size()
			if n.size > maxFileSize {
				return &fs.PathError{Op: "add", Path: p, Err: fmt.Errorf("%d bytes is more than the 4 GiB FAT32 allows", n.size)}
			}
		default:
			return &fs.PathError{Op: "add", Path: p, Err: fmt.Errorf("file type %v cannot be stored on FAT", t)}
		}
		parent.children = append(parent.children, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the tree: %w", err)
	}
	return root, nil
}

// assignNames gives every child of d a unique short name.
func assignNames(d *node) error {
	a := newAliaser(len(d.children))
	folded := make(map[string]string, len(d.children))
	var rest []*node
	// First the names that need no numeric tail: exact 8.3 names and names
	// that are 8.3 once upper-cased. These are unique because names that
	// differ only in case are refused.
	for _, c := range d.children {
		key := strings.ToUpper(c.name)
		if other, dup := folded[key]; dup {
			return &fs.PathError{Op: "add", Path: c.path,
				Err: fmt.Errorf("FAT names ignore case: clashes with %q", other)}
		}
		folded[key] = c.name
		if sn, ok := shortName(c.name); ok {
			c.short = sn
			a.reserve(sn)
			continue
		}
		c.long = true
		if sn, ok := shortName(upperASCII(c.name)); ok {
			c.short = sn
			a.reserve(sn)
			continue
		}
		rest = append(rest, c)
	}
	for _, c := range rest {
		sn, err := a.tailed(basisName(c.name))
		if err != nil {
			return &fs.PathError{Op: "add", Path: c.path, Err: err}
		}
		c.short = sn
	}
	return nil
}

// entries is the number of 32-byte directory entries d needs.
func (d *node) entries() int {
	n := 2 // "." and ".."; the root has the volume label instead
	if d.parent == nil {
		n = 1
	}
	for _, c := range d.children {
		n++
		if c.long {
			n += lfnCount(c.name)
		}
	}
	return n
}

// layoutPlan is the cluster allocation of a tree.
type layoutPlan struct {
	order []*node // allocation (and write) order
	used  uint32  // clusters allocated, from cluster 2 on
}

// plan names every entry and allocates clusters in walk order: each
// directory or file gets one contiguous run, the root first at cluster 2.
func plan(root *node, l layout) (layoutPlan, error) {
	var p layoutPlan
	cs := l.clusterSize()
	next := uint64(rootCluster)
	var visit func(n *node) error
	visit = func(n *node) error {
		var bytes int64
		if n.dir {
			if err := assignNames(n); err != nil {
				return err
			}
			e := n.entries()
			if e > maxDirEntries {
				return &fs.PathError{Op: "add", Path: n.path,
					Err: fmt.Errorf("directory needs %d entries, FAT allows %d", e, maxDirEntries)}
			}
			bytes = max(int64(e)*dirEntrySize, 1)
		} else {
			bytes = n.size
		}
		nc := uint64((bytes + cs - 1) / cs)
		if nc > 0 {
			if next+nc > uint64(l.clusters)+rootCluster {
				return fmt.Errorf("the tree does not fit in %d clusters of %d bytes (at %s)", l.clusters, cs, n.path)
			}
			n.cluster, n.nclusters = uint32(next), uint32(nc)
			next += nc
		}
		p.order = append(p.order, n)
		for _, c := range n.children {
			if err := visit(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(root); err != nil {
		return p, err
	}
	p.used = uint32(next - rootCluster)
	return p, nil
}

// fat encodes the used part of one FAT, whole sectors.
func (p layoutPlan) fat(l layout) []byte {
	entries := int64(rootCluster) + int64(p.used)
	buf := make([]byte, (entries*4+sectorSize-1)/sectorSize*sectorSize)
	le := binary.LittleEndian
	le.PutUint32(buf[0:], 0x0FFFFF00|mediaFixed)
	le.PutUint32(buf[4:], 0x0FFFFFFF) // clean, no errors
	for _, n := range p.order {
		if n.nclusters == 0 {
			continue
		}
		last := n.cluster + n.nclusters - 1
		for c := n.cluster; c < last; c++ {
			le.PutUint32(buf[c*4:], c+1)
		}
		le.PutUint32(buf[last*4:], fatEOC)
	}
	return buf
}

// dataWriter writes directories and file contents into the data area.
type dataWriter struct {
	w     io.WriterAt
	fsys  fs.FS
	l     layout
	ts    stamp
	label [11]byte
	buf   []byte
}

func (dw *dataWriter) writeNodes(order []*node) error {
	for _, n := range order {
		if n.nclusters == 0 {
			continue
		}
		off := dw.l.clusterOffset(n.cluster)
		if n.dir {
			if _, err := dw.w.WriteAt(dw.dirBytes(n), off); err != nil {
				return fmt.Errorf("writing directory %s: %w", n.path, err)
			}
			continue
		}
		if err := dw.copyFile(n, off); err != nil {
			return err
		}
	}
	return nil
}

// dirBytes encodes directory d as whole clusters.
func (dw *dataWriter) dirBytes(d *node) []byte {
	buf := make([]byte, int64(d.nclusters)*dw.l.clusterSize())
	off := 0
	put := func(sn [11]byte, attr byte, cluster, size uint32) {
		putEntry(buf[off:off+dirEntrySize], sn, attr, cluster, size, dw.ts)
		off += dirEntrySize
	}
	if d.parent == nil {
		put(dw.label, attrVolume, 0, 0)
	} else {
		dot := [11]byte{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
		put(dot, attrDir, d.cluster, 0)
		dot[1] = '.'
		parent := d.parent.cluster
		if d.parent.parent == nil {
			parent = 0 // ".." of a first-level directory names the root as 0
		}
		put(dot, attrDir, parent, 0)
	}
	for _, c := range d.children {
		if c.long {
			off += copy(buf[off:], lfnEntries(c.name, c.short))
		}
		if c.dir {
			put(c.short, attrDir, c.cluster, 0)
		} else {
			put(c.short, attrArchive, c.cluster, uint32(c.size))
		}
	}
	return buf
}

// copyFile streams file n to offset off, checking that it still has the
// size it had when the tree was walked.
func (dw *dataWriter) copyFile(n *node, off int64) error {
	f, err := dw.fsys.Open(n.path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", n.path, err)
	}
	defer f.Close()
	if dw.buf == nil {
		dw.buf = make([]byte, 1<<20)
	}
	written, err := io.CopyBuffer(io.NewOffsetWriter(dw.w, off), io.LimitReader(f, n.size), dw.buf)
	if err != nil {
		return fmt.Errorf("writing %s: %w", n.path, err)
	}
	if written != n.size {
		return fmt.Errorf("writing %s: file shrank from %d to %d bytes while writing", n.path, n.size, written)
	}
	if m, _ := f.Read(dw.buf[:1]); m > 0 {
		return fmt.Errorf("writing %s: file grew beyond %d bytes while writing", n.path, n.size)
	}
	return nil
}

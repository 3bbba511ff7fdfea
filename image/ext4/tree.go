package ext4

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// kind is what an inode holds.
type kind uint8

const (
	kindFile kind = iota + 1
	kindDir
	kindSymlink
)

// node is one inode of the filesystem: an entry of the tree, or the
// lost+found directory the filesystem adds.
type node struct {
	path     string // in the tree; "" for lost+found
	name     string
	kind     kind
	perm     uint16 // permission, setuid, setgid and sticky bits
	size     uint64 // file bytes, or symlink target length
	target   string // symlink target
	ino      uint32
	parent   int // index in the node list; the root is its own parent
	children []int
	subdirs  int

	// Filled in by plan.
	data   []byte // rendered directory blocks or slow symlink block
	runs   []run  // data blocks
	leaves []uint64
}

// blocks is the number of data blocks the node needs.
func (n *node) blocks(bs uint64) uint64 {
	switch {
	case n.kind == kindFile:
		return ceilDiv(n.size, bs)
	case n.data != nil:
		return uint64(len(n.data)) / bs
	}
	return 0
}

// readTree walks fsys into a node list: the root first, lost+found second,
// then every entry in fs.WalkDir order.
func readTree(fsys fs.FS) ([]*node, error) {
	nodes := []*node{
		{path: ".", kind: kindDir, perm: 0o755},
		{name: "lost+found", kind: kindDir, perm: 0o700},
	}
	nodes[0].children = []int{1}
	nodes[0].subdirs = 1
	index := map[string]int{".": 0}
	seen := map[string]bool{}
	rootSeen := false
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("ext4: walking %s: %w", p, err)
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("ext4: reading %s: %w", p, err)
		}
		mode := info.Mode()
		if p == "." {
			if rootSeen { // an entry with an empty name joins back to "."
				return fmt.Errorf("ext4: the tree holds an entry with an empty name (%q)", d.Name())
			}
			rootSeen = true
			if !mode.IsDir() {
				return errors.New("ext4: the tree's root is not a directory")
			}
			nodes[0].perm = perm(mode)
			return nil
		}
		if p == "lost+found" {
			return checkLostFound(fsys, mode)
		}
		n := &node{path: p, name: path.Base(p), perm: perm(mode)}
		if err := checkName(p, n.name); err != nil {
			return err
		}
		if seen[p] {
			return fmt.Errorf("ext4: %s appears twice in the tree", p)
		}
		seen[p] = true
		parent, ok := index[path.Dir(p)]
		if !ok {
			return fmt.Errorf("ext4: %s: parent directory not seen first", p)
		}
		n.parent = parent
		switch {
		case mode.IsDir():
			n.kind = kindDir
			index[p] = len(nodes)
			nodes[parent].subdirs++
		case mode.IsRegular():
			n.kind = kindFile
			if info.Size() < 0 {
				return fmt.Errorf("ext4: %s has a negative size", p)
			}
			n.size = uint64(info.Size())
		case mode&fs.ModeSymlink != 0:
			n.kind = kindSymlink
			t, err := fs.ReadLink(fsys, p)
			if err != nil {
				return fmt.Errorf("ext4: reading symlink %s: %w", p, err)
			}
			if t == "" || strings.IndexByte(t, 0) >= 0 {
				return fmt.Errorf("ext4: symlink %s has an empty target or one with a NUL byte", p)
			}
			n.target, n.size = t, uint64(len(t))
		default:
			return fmt.Errorf("ext4: %s: unsupported file type %v", p, mode.Type())
		}
		nodes[parent].children = append(nodes[parent].children, len(nodes))
		nodes = append(nodes, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, n := range nodes {
		n.ino = uint32(firstIno + i - 1)
	}
	nodes[0].ino = rootIno
	return nodes, nil
}

// checkName rejects names a directory entry cannot hold.
func checkName(p, name string) error {
	switch {
	case len(name) > 255:
		return fmt.Errorf("ext4: name of %s is longer than 255 bytes", p)
	case name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || !fs.ValidPath(p):
		return fmt.Errorf("ext4: %q is not a valid entry name", p)
	}
	return nil
}

// checkLostFound accepts a top-level lost+found only when it is an empty
// directory: the filesystem brings its own.
func checkLostFound(fsys fs.FS, mode fs.FileMode) error {
	if !mode.IsDir() {
		return errors.New("ext4: the tree holds a lost+found that is not a directory")
	}
	ents, err := fs.ReadDir(fsys, "lost+found")
	if err != nil {
		return fmt.Errorf("ext4: reading lost+found: %w", err)
	}
	if len(ents) > 0 {
		return errors.New("ext4: the tree's lost+found is not empty")
	}
	return fs.SkipDir
}

// perm converts the permission bits of a Go file mode to ext4's.
func perm(m fs.FileMode) uint16 {
	p := uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

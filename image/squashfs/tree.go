package squashfs

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Limits the kernel and the format put on names and symlink targets.
const (
	maxNameLen   = 255  // NAME_MAX; squashfs itself allows 256
	maxTargetLen = 4095 // PATH_MAX-1; the kernel rejects symlinks over a page
)

// kind is the type of a tree entry.
type kind uint8

const (
	kindDir kind = iota
	kindFile
	kindSymlink
)

// node is one entry of the scanned tree.
type node struct {
	name     string // base name; "" for the root
	path     string // path in the fs.FS
	kind     kind
	perm     uint16 // squashfs permission bits (07777)
	size     int64  // regular files: size reported by the tree
	target   string // symlinks
	parent   *node
	children []*node // directories: sorted by name
	subdirs  uint32  // directories: number of child directories
	ino      uint32  // inode number, 1..count
	ref      uint64  // inode reference (block<<16 | offset), once written
}

// scanTree walks fsys and returns its root and the number of inodes, with
// inode numbers assigned breadth first so that the entries of one directory
// have consecutive numbers.
func scanTree(fsys fs.FS) (*node, uint32, error) {
	var root *node
	dirs := map[string]*node{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("squashfs: walking %s: %w", p, err)
		}
		n, err := scanEntry(fsys, p, d)
		if err != nil {
			return err
		}
		if p == "." {
			if n.kind != kindDir {
				return fmt.Errorf("squashfs: root of the tree is not a directory")
			}
			n.name, n.perm = "", 0o755
			root = n
			dirs[p] = n
			return nil
		}
		parent := dirs[path.Dir(p)]
		if parent == nil {
			return fmt.Errorf("squashfs: %s: parent directory not walked", p)
		}
		n.parent = parent
		parent.children = append(parent.children, n)
		if n.kind == kindDir {
			parent.subdirs++
			dirs[p] = n
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if root == nil {
		return nil, 0, fmt.Errorf("squashfs: the tree has no root directory")
	}
	// Number inodes breadth first; sort children by name bytes, the order
	// the kernel's directory lookup expects (fs.WalkDir already walks in
	// this order, but an fs.FS is not obliged to report it).
	root.ino = 1
	next := uint32(2)
	queue := []*node{root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		slices.SortFunc(d.children, func(a, b *node) int { return strings.Compare(a.name, b.name) })
		for i, c := range d.children {
			if i > 0 && d.children[i-1].name == c.name {
				return nil, 0, fmt.Errorf("squashfs: %s: duplicate directory entry", c.path)
			}
			if next == 0 {
				return nil, 0, fmt.Errorf("squashfs: more than 2^32-1 inodes")
			}
			c.ino = next
			next++
			if c.kind == kindDir {
				queue = append(queue, c)
			}
		}
	}
	return root, next - 1, nil
}

// scanEntry turns one walked entry into a node.
func scanEntry(fsys fs.FS, p string, d fs.DirEntry) (*node, error) {
	n := &node{name: d.Name(), path: p}
	if p != "." {
		if err := checkName(n.name); err != nil {
			return nil, fmt.Errorf("squashfs: %s: %w", p, err)
		}
	}
	info, err := d.Info()
	if err != nil {
		return nil, fmt.Errorf("squashfs: reading file info of %s: %w", p, err)
	}
	mode := info.Mode()
	n.perm = uint16(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		n.perm |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		n.perm |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		n.perm |= 0o1000
	}
	switch mode.Type() {
	case fs.ModeDir:
		n.kind = kindDir
	case 0:
		n.kind = kindFile
		n.size = info.Size()
	case fs.ModeSymlink:
		n.kind = kindSymlink
		target, err := fs.ReadLink(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("squashfs: reading symlink %s: %w", p, err)
		}
		if target == "" || len(target) > maxTargetLen || strings.IndexByte(target, 0) >= 0 {
			return nil, fmt.Errorf("squashfs: symlink %s: target must be 1..%d bytes without NUL", p, maxTargetLen)
		}
		n.target = target
	default:
		return nil, fmt.Errorf("squashfs: %s: unsupported file type %v", p, mode.Type())
	}
	return n, nil
}

// checkName reports whether name can be a squashfs directory entry name.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid name %q", name)
	case len(name) > maxNameLen:
		return fmt.Errorf("name longer than %d bytes", maxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL", name)
	}
	return nil
}

package mirror

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/piimage/piimage/services/mirror/wire"
)

// tempPrefix starts the names of the mirror's own files in the tree: temp
// files being written (.tmp) and kept partial transfers (.partial). They
// are never listed, sent or deleted as content.
const tempPrefix = ".~mirror."

// isOwnFile reports whether the base name is one of the mirror's own files.
func isOwnFile(base string) bool { return strings.HasPrefix(base, tempPrefix) }

func tempName(rel, tag string) string {
	dir, base := path.Split(rel)
	return dir + tempPrefix + base + "." + tag + ".tmp"
}

func partialName(rel string) string {
	dir, base := path.Split(rel)
	return dir + tempPrefix + base + ".partial"
}

// ErrUnsafePath is wrapped by every refusal of a path received from a peer.
var ErrUnsafePath = errors.New("unsafe path")

// checkPath checks a path received from a peer: relative, clean, in "/"
// separated elements, none of them "", "." or "..", no NUL, and not one of
// the mirror's own files. It is the first guard; every file operation also
// goes through an os.Root, which refuses to leave the tree.
func checkPath(p string) error {
	if p == "" || len(p) > wire.MaxString {
		return fmt.Errorf("%w: empty or too long", ErrUnsafePath)
	}
	if p[0] == '/' {
		return fmt.Errorf("%w: %q is absolute", ErrUnsafePath, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w: %q holds NUL", ErrUnsafePath, p)
	}
	for _, el := range strings.Split(p, "/") {
		switch {
		case el == "" || el == "." || el == "..":
			return fmt.Errorf("%w: %q has a %q element", ErrUnsafePath, p, el)
		case len(el) > 255:
			return fmt.Errorf("%w: an element of %q is longer than 255 bytes", ErrUnsafePath, p)
		case isOwnFile(el):
			return fmt.Errorf("%w: %q names a mirror temp file", ErrUnsafePath, p)
		}
	}
	return nil
}

// wireMode turns a file mode into the mode sent: permissions and the
// sticky bit. Set-user-ID and set-group-ID are dropped on purpose: a
// replica runs as root and must not grow privileged programs from data.
func wireMode(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// fileMode is the inverse of wireMode.
func fileMode(v uint32) fs.FileMode {
	m := fs.FileMode(v & 0o777)
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// itemOf describes the entry rel from its Lstat info; ok is false for
// kinds the mirror does not copy (devices, sockets, pipes).
func itemOf(rel string, fi fs.FileInfo, readlink func(string) (string, error)) (it wire.Item, ok bool, err error) {
	it = wire.Item{Path: rel, Mode: wireMode(fi.Mode()), MtimeNs: fi.ModTime().UnixNano()}
	switch {
	case fi.Mode().IsRegular():
		it.Kind, it.Size = wire.KindFile, uint64(fi.Size())
	case fi.IsDir():
		it.Kind = wire.KindDir
	case fi.Mode()&fs.ModeSymlink != 0:
		it.Kind, it.Mode, it.MtimeNs = wire.KindSymlink, 0o777, 0
		it.Target, err = readlink(rel)
		if err != nil {
			return it, false, err
		}
	default:
		return it, false, nil
	}
	return it, true, nil
}

// sameItem reports whether a local entry matches the remote one: kind,
// mode, size and mtime for files (rsync's quick check), mode and target for
// the others. Directory mtimes are compared apart (sameDirTime).
func sameItem(local, remote wire.Item) bool {
	if local.Kind != remote.Kind {
		return false
	}
	switch local.Kind {
	case wire.KindFile:
		return local.Size == remote.Size && local.MtimeNs == remote.MtimeNs && local.Mode == remote.Mode
	case wire.KindSymlink:
		return local.Target == remote.Target
	default:
		return local.Mode == remote.Mode
	}
}

// scanTree lists the tree under root/sub ("" for all of it) without
// following symbolic links, leaving out excluded paths and the mirror's
// own files; own, when not nil, collects those. Paths are relative to root.
func scanTree(root, sub string, ex *excluder, own func(rel string)) (map[string]wire.Item, error) {
	out := map[string]wire.Item{}
	root = filepath.Clean(root)
	// The trailing separator makes WalkDir follow a root that is a link.
	dir := filepath.Join(root, filepath.FromSlash(sub)) + string(filepath.Separator)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if p == dir {
			return err
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // vanished while walking
			}
			return err
		}
		if isOwnFile(d.Name()) {
			if own != nil {
				own(rel)
			}
			return skip(d)
		}
		if ex.match(rel, d.IsDir()) {
			return skip(d)
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		it, ok, err := itemOf(rel, fi, func(string) (string, error) { return os.Readlink(p) })
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ok {
			out[rel] = it
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", dir, err)
	}
	return out, nil
}

func skip(d fs.DirEntry) error {
	if d.IsDir() {
		return filepath.SkipDir
	}
	return nil
}

// sortedItems returns the items sorted by path, so that a folder comes
// before what it holds.
func sortedItems(m map[string]wire.Item) []wire.Item {
	out := make([]wire.Item, 0, len(m))
	for _, it := range m {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// isUnder reports whether p is dir or inside it.
func isUnder(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir) && len(p) > len(dir) && p[len(dir)] == '/'
}

package rootfs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"testing/fstest"

	"github.com/piimage/piimage/boards"
)

// FsckPath is where the root keeps the static e2fsck that the init runs
// on the data partition before it mounts it (services/node fsckPath).
const FsckPath = "sbin/e2fsck"

// FsckCopyrightPath is e2fsck's copyright file in the root: e2fsprogs is
// GPL-2, and the image carries its license next to the program.
const FsckCopyrightPath = "usr/share/doc/e2fsck-static/copyright"

// withFsck adds the board's static e2fsck (Debian's e2fsck-static, pinned
// in boards/e2fsck.go) and its copyright file to the root tree.
func withFsck(ctx context.Context, o Options, root fs.FS) (fs.FS, error) {
	m, ok := root.(fstest.MapFS)
	if !ok {
		return nil, fmt.Errorf("adding e2fsck to the root: the root tree is a %T, not a map", root)
	}
	e, err := o.Board.FetchE2fsck(ctx, boards.DebianSource{Log: o.Log})
	if err != nil {
		return nil, fmt.Errorf("adding e2fsck to the root: %w", err)
	}
	bin, err := os.ReadFile(e.Binary)
	if err != nil {
		return nil, fmt.Errorf("adding e2fsck to the root: %w", err)
	}
	license, err := os.ReadFile(e.Copyright)
	if err != nil {
		return nil, fmt.Errorf("adding e2fsck to the root: %w", err)
	}
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	for _, d := range []string{"sbin", "usr", "usr/share", "usr/share/doc", "usr/share/doc/e2fsck-static"} {
		if _, ok := m[d]; !ok {
			m[d] = dir
		}
	}
	m[FsckPath] = &fstest.MapFile{Data: bin, Mode: 0o755}
	m[FsckCopyrightPath] = &fstest.MapFile{Data: license, Mode: 0o644}
	if o.Log != nil {
		o.Log.Debug("root: e2fsck", "package", e.Source, "bytes", len(bin))
	}
	return m, nil
}

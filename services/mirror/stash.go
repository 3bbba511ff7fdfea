package mirror

// The stash: files deleted on a replica wait there until it is idle, so
// that a rename on the primary costs a delta, not the whole content.

import (
	"fmt"
	"time"

	"github.com/piimage/piimage/services/mirror/wire"
)

// stashDir holds deleted files until the replica is idle again.
const stashDir = tempPrefix + "stash"

// stashKey finds a stashed file by what a renamed file keeps.
type stashKey struct {
	size    uint64
	mtimeNs int64
}

// discard deletes rel, moving the regular files it holds to the stash.
func (s *syncer) discard(rel string) (bool, error) {
	fi, err := s.l.root.Lstat(rel)
	if err != nil {
		return false, nil
	}
	switch {
	case fi.Mode().IsRegular():
		if s.stashFile(rel, uint64(fi.Size()), fi.ModTime().UnixNano()) {
			return true, nil
		}
	case fi.IsDir():
		if files, err := scanTree(s.l.dir, rel, nil, nil); err == nil {
			for _, it := range files {
				if it.Kind == wire.KindFile && s.stashN < maxStash {
					s.stashFile(it.Path, it.Size, it.MtimeNs)
				}
			}
		}
	}
	return s.l.remove(rel)
}

// stashGrace is how long the stash is kept once the replica is idle.
const stashGrace = 2 * time.Second

// maxStash bounds the files stashed between two idle moments.
const maxStash = 100000

func (s *syncer) stashFile(rel string, size uint64, mtimeNs int64) bool {
	if s.stashN == 0 {
		s.l.root.RemoveAll(stashDir)
		if err := s.l.root.Mkdir(stashDir, 0o700); err != nil {
			return false
		}
		s.stash = map[stashKey]string{}
	}
	name := fmt.Sprintf("%s/%d", stashDir, s.stashN)
	if err := s.l.root.Rename(rel, name); err != nil {
		return false
	}
	s.stashN++
	s.stash[stashKey{size, mtimeNs}] = name
	return true
}

func (s *syncer) dropStash() {
	if s.stashN > 0 {
		s.l.root.RemoveAll(stashDir)
		s.stash, s.stashN = nil, 0
	}
}

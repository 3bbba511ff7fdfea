package web

import (
	"net/http"
	"path"
)

// site is the serving state of one configuration: its settings, the open
// web root and the cache of answers. A reload builds a new site; requests
// in flight finish on the one they started with.
type site struct {
	cfg    Config // with defaults
	tree   *tree
	cache  *fileCache
	ttl    int64 // nanoseconds an entry is trusted; <= 0 checks every time
	whoami []byte
	// healthy reports whether the node serves, for HealthPath.
	healthy func() error
}

// newSite builds the state of cfg (with defaults) over the open root t.
func newSite(cfg Config, t *tree, hostname string, healthy func() error) *site {
	return &site{
		cfg:     cfg,
		tree:    t,
		cache:   newFileCache(cfg.FileCacheBytes),
		ttl:     int64(cfg.FileCacheTTL),
		whoami:  []byte(hostname + "\n"),
		healthy: healthy,
	}
}

// entry returns the answer for the cleaned path clean (rel and dir as
// cleanPath returned them) at time now, from the cache when it is fresh,
// or a status for a path with no answer.
func (s *site) entry(clean, rel string, dir bool, now int64) (*entry, int) {
	e := s.cache.get(clean)
	if e != nil {
		if s.ttl > 0 && now-e.checked.Load() < s.ttl {
			return e, 0
		}
		if s.fresh(e) {
			e.checked.Store(now)
			return e, 0
		}
	}
	ne, status := s.build(clean, rel, dir)
	if status != 0 {
		if e != nil {
			s.cache.drop(clean, e)
		}
		return nil, status
	}
	ne.checked.Store(now)
	if ne.kind != kindListing {
		s.cache.put(clean, ne)
	}
	return ne, 0
}

// fresh reports whether e still matches the files on disk.
func (s *site) fresh(e *entry) bool {
	if e.kind != kindFile {
		id, err := s.tree.stat(e.dirRel)
		return err == nil && id == e.dirID
	}
	if id, err := s.tree.stat(e.plain.rel); err != nil || id != e.plain.id {
		return false
	}
	gid, err := s.tree.stat(e.gzRel)
	if e.gz == nil {
		return err != nil || !gid.isRegular()
	}
	return err == nil && gid == e.gz.id
}

// build looks clean up on disk: directories answer with their index file,
// a listing or a redirect to the path with a slash; files with themselves.
func (s *site) build(clean, rel string, dir bool) (*entry, int) {
	if dir {
		idx := path.Join(rel, s.cfg.Index)
		e, status := s.buildFile(idx, clean+s.cfg.Index)
		if status != http.StatusNotFound {
			return e, status
		}
		h, id, err := s.tree.open(rel)
		if err != nil {
			return nil, statusOf(err)
		}
		h.Close()
		if !id.isDir() || !s.cfg.Listing {
			return nil, http.StatusNotFound
		}
		return &entry{kind: kindListing, dirRel: rel, dirID: id, urlPath: clean}, 0
	}
	h, id, err := s.tree.open(rel)
	if err != nil {
		return nil, statusOf(err)
	}
	if id.isDir() {
		h.Close()
		return &entry{kind: kindRedirect, dirRel: rel, dirID: id, location: escapePath(clean + "/")}, 0
	}
	return s.fileEntry(rel, clean, h, id), 0
}

// buildFile looks up a file that must not be a directory (an index file).
func (s *site) buildFile(rel, urlPath string) (*entry, int) {
	h, id, err := s.tree.open(rel)
	if err != nil {
		return nil, statusOf(err)
	}
	if id.isDir() {
		h.Close()
		return nil, http.StatusNotFound
	}
	return s.fileEntry(rel, urlPath, h, id), 0
}

// fileEntry builds the entry of the regular file rel, open as h, and of its
// .gz sibling. It closes h.
func (s *site) fileEntry(rel, urlPath string, h handle, id fileID) *entry {
	e := &entry{
		kind:         kindFile,
		contentType:  contentType(path.Base(urlPath), s.cfg.MimeTypes),
		cacheControl: s.cfg.cacheControlFor(urlPath),
		gzRel:        rel + ".gz",
	}
	gh, gid, err := s.tree.open(e.gzRel)
	if err == nil && !gid.isRegular() {
		gh.Close()
		err = errNotServable
	}
	e.vary = err == nil
	e.plain = s.loadRep(rel, h, id, e, false)
	if e.vary {
		e.gz = s.loadRep(e.gzRel, gh, gid, e, true)
	}
	return e
}

// loadRep builds a representation, reading small files into memory while
// the cache's budget allows. It closes h.
func (s *site) loadRep(rel string, h handle, id fileID, e *entry, gz bool) *rep {
	defer h.Close()
	var data []byte
	if id.size <= s.cfg.MaxCachedFile && s.cache.reserve(id.size) {
		data = make([]byte, id.size)
		if n, err := h.ReadAt(data, 0); n != len(data) {
			// Changed under us (or unreadable): serve it from disk,
			// where open compares identities again.
			_ = err
			s.cache.reserve(-id.size)
			data = nil
		}
	}
	return newRep(rel, id, data, e, gz)
}

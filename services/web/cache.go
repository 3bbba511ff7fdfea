package web

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// rep is one representation of a file: the file itself or its precompressed
// .gz sibling, with the headers derived from its identity and, for small
// files, its contents.
type rep struct {
	rel          string // path relative to the root
	id           fileID
	etag         string
	lastModified string
	modSec       int64  // modification time in Unix seconds, for dates
	gzip         bool   // the .gz sibling, sent with Content-Encoding: gzip
	data         []byte // the contents, when kept in memory
	// head200 is the rendered header fields of a 200 answer with the
	// whole representation.
	head200 []byte
}

// entryKind tells what a cache entry answers.
type entryKind uint8

const (
	kindFile     entryKind = iota // a file, or a directory's index file
	kindRedirect                  // a directory named without its slash
	kindListing                   // a directory without index (listings on)
)

// entry is the cached answer for one cleaned path.
type entry struct {
	kind    entryKind
	checked atomic.Int64 // Unix nanoseconds of the last check against the disk

	// kindFile: the file, its .gz sibling (nil when there is none) and
	// the headers they share.
	plain, gz    *rep
	gzRel        string
	contentType  string
	cacheControl string
	vary         bool // there is a .gz sibling: answers depend on Accept-Encoding

	// kindRedirect and kindListing: the directory.
	dirRel   string
	dirID    fileID
	location string // kindRedirect: escaped path with the slash
	urlPath  string // kindListing: decoded path with the slash
}

// bytes is the memory of the file contents e keeps.
func (e *entry) bytes() int64 {
	var n int64
	if e.plain != nil {
		n += int64(len(e.plain.data))
	}
	if e.gz != nil {
		n += int64(len(e.gz.data))
	}
	return n
}

// fileCache maps cleaned request paths to entries. It is bounded in
// entries and in bytes of file contents; what does not fit is served
// from disk.
type fileCache struct {
	m          sync.Map // string -> *entry
	n          atomic.Int64
	bytes      atomic.Int64
	maxEntries int64
	maxBytes   int64
}

// maxCacheEntries bounds the entries of one cache.
const maxCacheEntries = 8192

func newFileCache(maxBytes int64) *fileCache {
	return &fileCache{maxEntries: maxCacheEntries, maxBytes: maxBytes}
}

func (c *fileCache) get(key string) *entry {
	v, ok := c.m.Load(key)
	if !ok {
		return nil
	}
	return v.(*entry)
}

// reserve claims n bytes of the content budget and reports whether they
// fit.
func (c *fileCache) reserve(n int64) bool {
	if c.bytes.Add(n) > c.maxBytes {
		c.bytes.Add(-n)
		return false
	}
	return true
}

// put stores e under key, evicting an entry when the cache is full.
func (c *fileCache) put(key string, e *entry) {
	old, loaded := c.m.Swap(key, e)
	if loaded {
		c.bytes.Add(-old.(*entry).bytes())
		return
	}
	if c.n.Add(1) <= c.maxEntries {
		return
	}
	c.m.Range(func(k, v any) bool {
		if k.(string) == key {
			return true
		}
		if c.m.CompareAndDelete(k, v) {
			c.n.Add(-1)
			c.bytes.Add(-v.(*entry).bytes())
		}
		return false
	})
}

// drop removes the entry under key when it is still e.
func (c *fileCache) drop(key string, e *entry) {
	if c.m.CompareAndDelete(key, e) {
		c.n.Add(-1)
		c.bytes.Add(-e.bytes())
	}
}

// newRep builds the representation of rel with identity id and contents
// data (nil when not kept in memory).
func newRep(rel string, id fileID, data []byte, e *entry, gz bool) *rep {
	r := &rep{rel: rel, id: id, data: data, modSec: id.mtime / 1e9, gzip: gz}
	b := make([]byte, 0, 40)
	b = append(b, '"')
	b = strconv.AppendInt(b, id.mtime, 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, id.size, 16)
	if gz {
		b = append(b, "-gz"...)
	}
	b = append(b, '"')
	r.etag = string(b)
	r.lastModified = time.Unix(r.modSec, 0).UTC().Format(timeFormat)
	var w response
	w.reset()
	w.status = 200
	w.setRep(e, r)
	w.length = id.size
	r.head200 = w.appendFields(nil)
	return r
}

// timeFormat is the HTTP date format (RFC 9110 section 5.6.7).
const timeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// setRep sets the header fields of w that come from the file.
func (w *response) setRep(e *entry, r *rep) {
	w.contentType = e.contentType
	w.cacheControl = e.cacheControl
	w.vary = e.vary
	if r.gzip {
		w.encoding = "gzip"
	}
	w.etag = r.etag
	w.lastModified = r.lastModified
}

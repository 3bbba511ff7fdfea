package web

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
)

// serve answers r into w at time now (Unix nanoseconds). It is the one
// entry point of the layers below the wire format.
func (s *site) serve(r *request, w *response, now int64) {
	w.reset()
	if r.method != http.MethodGet && r.method != http.MethodHead {
		w.text(http.StatusMethodNotAllowed, errorText(http.StatusMethodNotAllowed))
		w.allow = "GET, HEAD"
		return
	}
	w.head = r.method == http.MethodHead
	clean, rel, dir, status := cleanPath(r.path, s.cfg.ShowDotfiles)
	if status != 0 {
		s.fail(w, status, now)
		return
	}
	switch clean {
	case s.cfg.WhoAmIPath:
		w.status = http.StatusOK
		w.contentType = "text/plain; charset=utf-8"
		w.cacheControl = "no-store"
		w.body.data = s.whoami
		w.body.n = int64(len(s.whoami))
		w.length = w.body.n
		return
	case s.cfg.HealthPath:
		if err := s.healthy(); err != nil {
			w.text(http.StatusServiceUnavailable, "unhealthy: web root unavailable\n")
		} else {
			w.text(http.StatusOK, "ok\n")
		}
		w.cacheControl = "no-store"
		return
	}
	e, status := s.entry(clean, rel, dir, now)
	if status != 0 {
		s.fail(w, status, now)
		return
	}
	switch e.kind {
	case kindRedirect:
		w.text(http.StatusMovedPermanently, errorText(http.StatusMovedPermanently))
		w.location = e.location
		if r.hasQuery {
			w.location += "?" + r.query
		}
	case kindListing:
		s.listing(w, e, now)
	default:
		if !s.serveFile(r, w, e, now) {
			// The file changed between the check and the open: look
			// again, once, rather than mix versions.
			e.checked.Store(0)
			if e, status = s.entry(clean, rel, dir, now); status != 0 {
				s.fail(w, status, now)
			} else if e.kind != kindFile || !s.serveFile(r, w, e, now) {
				w.reset()
				w.text(http.StatusServiceUnavailable, errorText(http.StatusServiceUnavailable))
				w.closeConn = true
			}
		}
	}
}

// fail answers with an error status: the custom page for 404, else text.
func (s *site) fail(w *response, status int, now int64) {
	head := w.head
	w.reset()
	w.head = head
	if status == http.StatusNotFound && s.notFoundPage(w, now) {
		return
	}
	w.text(status, errorText(status))
}

// notFoundPage sets w to the custom 404 page and reports whether there is
// one.
func (s *site) notFoundPage(w *response, now int64) bool {
	page := s.cfg.NotFoundPage
	if page == "" {
		page = DefaultNotFoundPage
	}
	clean, rel, dir, status := cleanPath(page, s.cfg.ShowDotfiles)
	if status != 0 || dir {
		return false
	}
	e, status := s.entry(clean, rel, dir, now)
	if status != 0 || e.kind != kindFile {
		return false
	}
	w.status = http.StatusNotFound
	w.contentType = e.contentType
	w.cacheControl = "no-cache"
	if !w.head && !s.setBody(w, e, e.plain) {
		head := w.head
		w.reset()
		w.head = head
		return false
	}
	w.body.n = e.plain.id.size
	w.length = w.body.n
	return true
}

// serveFile answers with a file: conditional requests, the .gz sibling and
// ranges. It reports false, with w undefined, when the file on disk is no
// longer the one e describes.
func (s *site) serveFile(r *request, w *response, e *entry, now int64) bool {
	w.reset()
	w.head = r.method == http.MethodHead
	rp := e.plain
	if e.gz != nil && acceptsGzip(r.acceptEncoding) {
		rp = e.gz
	}
	w.setRep(e, rp)
	switch checkPreconditions(r, rp) {
	case http.StatusNotModified:
		// RFC 9110 section 15.4.5: the validators and the fields a
		// cache needs, no other metadata of the representation.
		w.status = http.StatusNotModified
		w.length = -1
		w.contentType, w.encoding = "", ""
		return true
	case http.StatusPreconditionFailed:
		s.fail(w, http.StatusPreconditionFailed, now)
		return true
	}
	size := rp.id.size
	ranges, status := parseRange(r.rangeSpec, size)
	if status != 0 && r.ifRange != "" && !ifRangeMatches(r.ifRange, rp) {
		status, ranges = 0, nil
	}
	switch status {
	case http.StatusRequestedRangeNotSatisfiable:
		head := w.head
		w.reset()
		w.head = head
		w.text(status, errorText(status))
		w.contentRange = "bytes */" + strconv.FormatInt(size, 10)
		return true
	case 0:
		w.status = http.StatusOK
		w.length = size
		w.body.n = size
		w.fixed = rp.head200
	default:
		w.status = http.StatusPartialContent
		if len(ranges) == 1 {
			rg := ranges[0]
			w.body.off, w.body.n = rg.start, rg.length
			w.length = rg.length
			w.contentRange = rg.contentRange(size)
		} else {
			s.multipart(w, ranges, size)
		}
	}
	return w.head || s.setBody(w, e, rp)
}

// setBody points w's body at rp's contents: memory, or the file opened
// again and checked to be the same version. It reports false when the
// file changed or vanished.
func (s *site) setBody(w *response, e *entry, rp *rep) bool {
	if rp.data != nil {
		w.body.data = rp.data
		return true
	}
	h, id, err := s.tree.open(rp.rel)
	if err != nil {
		return false
	}
	if id != rp.id {
		h.Close()
		return false
	}
	w.body.file = h
	return true
}

// multipart sets w to a multipart/byteranges answer (RFC 9110 section
// 14.6) of ranges.
func (s *site) multipart(w *response, ranges []byteRange, size int64) {
	boundary := fmt.Sprintf("%016x", rand.Uint64())
	ctype := w.contentType
	w.contentType = "multipart/byteranges; boundary=" + boundary
	var total int64
	for i, rg := range ranges {
		var h []byte
		if i > 0 {
			h = append(h, "\r\n"...)
		}
		h = append(h, "--"+boundary+"\r\n"...)
		if ctype != "" {
			h = append(h, "Content-Type: "+ctype+"\r\n"...)
		}
		h = append(h, "Content-Range: "+rg.contentRange(size)+"\r\n\r\n"...)
		w.body.parts = append(w.body.parts, part{head: h, off: rg.start, n: rg.length})
		total += int64(len(h)) + rg.length
	}
	w.body.tail = []byte("\r\n--" + boundary + "--\r\n")
	w.length = total + int64(len(w.body.tail))
}

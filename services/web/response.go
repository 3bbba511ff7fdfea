package web

import (
	"net/http"
	"strconv"
)

// request is what the layers below the wire format need of a request. The
// HTTP/1.1 loop and the net/http front both fill it.
type request struct {
	method string
	// path is the request target's path, still percent-encoded; query is
	// what follows "?", and hasQuery tells an empty query from none.
	path     string
	query    string
	hasQuery bool

	ifMatch, ifNoneMatch               string
	ifModifiedSince, ifUnmodifiedSince string
	ifRange, rangeSpec                 string
	acceptEncoding                     string
}

// response is an answer of the serving layers, written by a front.
type response struct {
	status int
	// head suppresses the body (HEAD); length is still the body's length.
	head bool
	// closeConn asks the front to close the connection after the answer.
	closeConn bool

	contentType, contentRange, encoding string
	etag, lastModified, cacheControl    string
	location, allow                     string
	vary                                bool
	// length is the Content-Length; -1 sends none (304).
	length int64
	// fixed, when set, is the rendered form of the fields above (a cached
	// 200 answer); the HTTP/1.1 loop writes it instead of rendering them.
	fixed []byte

	body body
}

// body is where the bytes of an answer come from: data (in memory) or file,
// either the slice [off, off+n) or, for several ranges, parts and tail.
type body struct {
	data  []byte
	file  handle
	off   int64
	n     int64
	parts []part
	tail  []byte
}

// part is one range of a multipart/byteranges answer: its header, then n
// bytes at off.
type part struct {
	head   []byte
	off, n int64
}

// reset prepares r for the next answer, keeping its parts' storage.
func (r *response) reset() {
	parts := r.body.parts[:0]
	*r = response{length: -1}
	r.body.parts = parts
}

// release closes the file of the answer, if any.
func (r *response) release() {
	if r.body.file != nil {
		r.body.file.Close()
		r.body.file = nil
	}
}

// eachHeader calls fn for every header field of r except Date and
// Connection, which the fronts add.
func (r *response) eachHeader(fn func(name, value string)) {
	if r.contentType != "" {
		fn("Content-Type", r.contentType)
	}
	if r.length >= 0 {
		fn("Content-Length", strconv.FormatInt(r.length, 10))
	}
	if r.contentRange != "" {
		fn("Content-Range", r.contentRange)
	}
	if r.encoding != "" {
		fn("Content-Encoding", r.encoding)
	}
	if r.vary {
		fn("Vary", "Accept-Encoding")
	}
	if r.etag != "" {
		fn("ETag", r.etag)
		// Ranges are offered for files, which are the answers with ETags.
		fn("Accept-Ranges", "bytes")
	}
	if r.lastModified != "" {
		fn("Last-Modified", r.lastModified)
	}
	if r.cacheControl != "" {
		fn("Cache-Control", r.cacheControl)
	}
	if r.location != "" {
		fn("Location", r.location)
	}
	if r.allow != "" {
		fn("Allow", r.allow)
	}
}

// appendFields renders r's header fields as "Name: value\r\n" lines.
func (r *response) appendFields(b []byte) []byte {
	r.eachHeader(func(name, value string) {
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, value...)
		b = append(b, "\r\n"...)
	})
	return b
}

// text sets r to a generated text/plain answer.
func (r *response) text(status int, msg string) {
	r.status = status
	r.contentType = "text/plain; charset=utf-8"
	r.body.data = []byte(msg)
	r.body.n = int64(len(msg))
	r.length = r.body.n
}

// errorText is the body of an error answer: the status and its reason.
func errorText(status int) string {
	return strconv.Itoa(status) + " " + http.StatusText(status) + "\n"
}

package web

import (
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ServeHTTP answers r through net/http, with the same layers as the
// HTTP/1.1 loop. The server uses it for HTTPS and HTTP/2; it also lets
// tests and other programs mount the web root in their own http.Server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.site.Load()
	if st == nil {
		http.Error(w, errorText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	var req request
	var resp response
	if len(r.RequestURI) > st.cfg.MaxURIBytes {
		resp.reset()
		resp.text(http.StatusRequestURITooLong, errorText(http.StatusRequestURITooLong))
	} else {
		req.method = r.Method
		req.path, req.query, req.hasQuery = splitTarget(r.RequestURI)
		hv := func(name string) string { return strings.Join(r.Header.Values(name), ", ") }
		req.ifMatch = hv("If-Match")
		req.ifNoneMatch = hv("If-None-Match")
		req.ifModifiedSince = r.Header.Get("If-Modified-Since")
		req.ifUnmodifiedSince = r.Header.Get("If-Unmodified-Since")
		req.ifRange = r.Header.Get("If-Range")
		if rg := r.Header.Values("Range"); len(rg) == 1 {
			req.rangeSpec = rg[0]
		}
		req.acceptEncoding = hv("Accept-Encoding")
		st.serve(&req, &resp, now.UnixNano())
	}
	defer resp.release()
	h := w.Header()
	resp.eachHeader(func(name, value string) { h[name] = []string{value} })
	if resp.closeConn && r.ProtoMajor == 1 {
		h["Connection"] = []string{"close"}
	}
	w.WriteHeader(resp.status)
	var sent int64
	if !resp.head && resp.length > 0 {
		sent = writeBody(w, &resp, st.cfg.WriteTimeout)
	}
	if l := s.alog.Load(); l != nil {
		minor := r.ProtoMinor
		if r.ProtoMajor >= 2 {
			minor = 2
		}
		remote, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			remote = r.RemoteAddr
		}
		e := logEntry{
			remote: remote, method: []byte(r.Method), target: []byte(r.RequestURI), minor: minor,
			status: resp.status, bytes: sent, referer: []byte(r.Referer()), agent: []byte(r.UserAgent()),
			time: s.clock.at(now),
		}
		l.add(appendLogLine(nil, &e))
	}
}

// writeBody writes resp's body to w and returns the bytes sent. A failure
// part way aborts the connection, since the Content-Length can no longer
// be kept.
func writeBody(w http.ResponseWriter, resp *response, timeout time.Duration) int64 {
	rc := http.NewResponseController(w)
	cw := &countingWriter{w: w, rc: rc, timeout: timeout}
	b := &resp.body
	write := func(off, n int64) {
		var err error
		if b.data != nil {
			_, err = cw.Write(b.data[off : off+n])
		} else {
			_, err = io.Copy(cw, io.NewSectionReader(b.file, off, n))
		}
		if err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	if len(b.parts) == 0 {
		write(b.off, b.n)
		return cw.n
	}
	for _, p := range b.parts {
		if _, err := cw.Write(p.head); err != nil {
			panic(http.ErrAbortHandler)
		}
		write(p.off, p.n)
	}
	if _, err := cw.Write(b.tail); err != nil {
		panic(http.ErrAbortHandler)
	}
	return cw.n
}

// countingWriter counts the bytes written and extends the write deadline
// before each write, so only a stalled client times out.
type countingWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	n       int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.rc.SetWriteDeadline(time.Now().Add(c.timeout))
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

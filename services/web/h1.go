package web

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// conn serves HTTP/1.x on one plain TCP connection: keep-alive, pipelined
// requests answered in order, answers batched into as few writes as
// possible, small files written from memory and large ones with sendfile.
type conn struct {
	srv    *Server
	ln     *listener
	nc     net.Conn
	rc     syscall.RawConn // for sendfile; nil when the conn has none
	remote string

	rbuf       []byte
	start, end int // unread bytes are rbuf[start:end]
	scanned    int // bytes of them already searched for the head's end

	wbuf []byte
	bufs [2][]byte

	h    head
	req  request
	resp response
	line []byte // access log line

	readDL, writeDL int64 // current deadlines, Unix nanoseconds; 0 none
	// now is when the current request's head was read. Deadlines are
	// computed from it rather than from a fresh clock reading: they are
	// coarse anyway, and reading the clock is a visible cost per request.
	now time.Time

	idle   atomic.Bool // waiting for a request with nothing buffered
	retire atomic.Bool // close after the current answer
}

const (
	initialReadBuffer = 4 << 10
	flushAt           = 32 << 10 // write buffered answers beyond this size
	copyBodyMax       = 16 << 10 // bodies up to this are copied into the write buffer
	discardBodyMax    = 64 << 10 // request bodies up to this are skipped, beyond the connection closes
	sendfileChunk     = 4 << 20  // the write deadline is extended per chunk
	lingerTime        = 500 * time.Millisecond
)

// errHeadTooLarge and errURITooLong end a read of a request head.
var (
	errHeadTooLarge = errors.New("request head too large")
	errURITooLong   = errors.New("request target too long")
)

func newConn(s *Server, nc net.Conn, ln *listener) *conn {
	c := &conn{srv: s, ln: ln, nc: nc, rbuf: make([]byte, initialReadBuffer)}
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.remote = a.IP.String()
	} else if a := nc.RemoteAddr(); a != nil {
		c.remote = a.String()
	}
	return c
}

// serve answers requests until the client closes, a timeout, an error or
// retire.
func (c *conn) serve() {
	defer c.srv.untrack(c)
	for {
		st := c.srv.site.Load()
		headEnd, err := c.readHead(st)
		if err != nil {
			switch err {
			case errHeadTooLarge:
				c.failHead(st, http.StatusRequestHeaderFieldsTooLarge)
			case errURITooLong:
				c.failHead(st, http.StatusRequestURITooLong)
			default:
				c.flush(st)
				c.nc.Close()
			}
			return
		}
		// The settings may have been reloaded while the connection
		// waited: answer with the current ones.
		st = c.srv.site.Load()
		now := time.Now()
		c.now = now
		if status := parseHead(c.rbuf[c.start:headEnd], &c.h, st.cfg.MaxURIBytes); status != 0 {
			c.start = headEnd
			c.failHead(st, status)
			return
		}
		c.start = headEnd
		keep := c.answer(st, now)
		if keep && c.h.contentLength > 0 {
			keep = c.discardBody(st, c.h.contentLength)
		}
		if !keep {
			c.flush(st)
			c.lingerClose()
			return
		}
		if c.start == c.end || len(c.wbuf) >= flushAt {
			if !c.flush(st) {
				c.nc.Close()
				return
			}
		}
	}
}

// answer serves the parsed request in c.h and reports whether the
// connection stays open.
func (c *conn) answer(st *site, now time.Time) bool {
	h := &c.h
	r := &c.req
	switch string(h.method) {
	case http.MethodGet:
		r.method = http.MethodGet
	case http.MethodHead:
		r.method = http.MethodHead
	default:
		r.method = string(h.method)
	}
	r.path, r.query, r.hasQuery = splitTarget(string(h.target))
	r.ifMatch = str(h.ifMatch)
	r.ifNoneMatch = str(h.ifNoneMatch)
	r.ifModifiedSince = str(h.ifModifiedSince)
	r.ifUnmodifiedSince = str(h.ifUnmodifiedSince)
	r.ifRange = str(h.ifRange)
	r.rangeSpec = str(h.rangeSpec)
	if h.rangeTwice {
		r.rangeSpec = "" // two Range fields: ignore both
	}
	r.acceptEncoding = str(h.acceptEncoding)

	st.serve(r, &c.resp, now.UnixNano())
	keep := !c.resp.closeConn && !h.connClose && !h.chunked && !c.retire.Load() &&
		(h.minor == 1 || h.connKeepAlive) && h.contentLength <= discardBodyMax
	stamp := c.srv.clock.at(now)
	sent, ok := c.writeResponse(st, stamp, keep, h.minor)
	c.resp.release()
	c.log(stamp, c.resp.status, sent, false)
	return keep && ok
}

func str(b []byte) string {
	if b == nil {
		return ""
	}
	return string(b)
}

// readHead reads until the buffer holds a whole request head and returns
// its end in rbuf.
func (c *conn) readHead(st *site) (int, error) {
	var firstByte time.Time
	for {
		if c.start < c.end {
			c.start += skipEmptyLines(c.rbuf[c.start:c.end])
		}
		if c.start == c.end {
			c.start, c.end, c.scanned = 0, 0, 0
		} else if n := findHeadEnd(c.rbuf[c.start:c.end], c.scanned); n >= 0 {
			c.scanned = 0
			if n > st.cfg.MaxHeaderBytes {
				return 0, tooLarge(c.rbuf[c.start:c.end], &st.cfg)
			}
			return c.start + n, nil
		} else {
			c.scanned = c.end - c.start
		}
		buffered := c.end - c.start
		if buffered >= st.cfg.MaxHeaderBytes {
			return 0, tooLarge(c.rbuf[c.start:c.end], &st.cfg)
		}
		// Need more bytes: answers waiting in the buffer go out first.
		if len(c.wbuf) > 0 && !c.flush(st) {
			return 0, net.ErrClosed
		}
		c.makeRoom(st)
		now := c.now
		if now.IsZero() || buffered > 0 {
			now = time.Now()
		}
		if buffered == 0 {
			if c.retire.Load() {
				return 0, net.ErrClosed
			}
			c.extendRead(now, st.cfg.IdleTimeout)
			c.idle.Store(true)
			if c.retire.Load() { // retired between the check and the store
				return 0, net.ErrClosed
			}
		} else {
			// A started head must be whole within ReadHeaderTimeout of
			// its first byte, however slowly it trickles in.
			if firstByte.IsZero() {
				firstByte = now
				c.setReadDeadline(firstByte.Add(st.cfg.ReadHeaderTimeout))
			}
		}
		n, err := c.nc.Read(c.rbuf[c.end:])
		c.idle.Store(false)
		c.end += n
		if err != nil && n == 0 {
			return 0, err
		}
	}
}

// tooLarge tells which limit a head beyond MaxHeaderBytes breaks: a
// request line longer than a target may be is 414, else 431.
func tooLarge(b []byte, cfg *Config) error {
	if nl := bytes.IndexByte(b, '\n'); nl < 0 || nl > cfg.MaxURIBytes+len("GET  HTTP/1.1\r") {
		return errURITooLong
	}
	return errHeadTooLarge
}

// makeRoom moves unread bytes to the buffer's start and grows it up to
// MaxHeaderBytes.
func (c *conn) makeRoom(st *site) {
	if c.start > 0 && (c.end == len(c.rbuf) || c.start == c.end) {
		copy(c.rbuf, c.rbuf[c.start:c.end])
		c.end -= c.start
		c.start = 0
	}
	if c.end == len(c.rbuf) {
		n := min(2*len(c.rbuf), st.cfg.MaxHeaderBytes+initialReadBuffer)
		nb := make([]byte, n)
		copy(nb, c.rbuf[:c.end])
		c.rbuf = nb
	}
}

// extendRead sets the read deadline to now+d unless the current one is at
// least three quarters of that away: a deadline update costs a timer
// operation, and keep-alive connections would otherwise do one per request.
func (c *conn) extendRead(now time.Time, d time.Duration) {
	want := now.Add(d).UnixNano()
	if c.readDL != 0 && c.readDL-now.UnixNano() >= int64(d)*3/4 && c.readDL <= want {
		return
	}
	c.setReadDeadline(time.Unix(0, want))
}

func (c *conn) setReadDeadline(t time.Time) {
	c.readDL = t.UnixNano()
	c.nc.SetReadDeadline(t)
}

// extendWrite does for the write deadline what extendRead does for reads.
func (c *conn) extendWrite(now time.Time, d time.Duration) {
	want := now.Add(d).UnixNano()
	if c.writeDL != 0 && c.writeDL-now.UnixNano() >= int64(d)*3/4 && c.writeDL <= want {
		return
	}
	c.writeDL = want
	c.nc.SetWriteDeadline(time.Unix(0, want))
}

// clock returns the time of the current request, or now before the first.
func (c *conn) clock() time.Time {
	if c.now.IsZero() {
		return time.Now()
	}
	return c.now
}

// flush writes the buffered answers and reports success.
func (c *conn) flush(st *site) bool {
	if len(c.wbuf) == 0 {
		return true
	}
	c.extendWrite(c.clock(), st.cfg.WriteTimeout)
	_, err := c.nc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err == nil
}

// writeResponse writes c.resp and returns the body bytes sent and whether
// the connection is still usable.
func (c *conn) writeResponse(st *site, stamp *stamp, keep bool, minor int) (int64, bool) {
	r := &c.resp
	b := append(c.wbuf, statusLine(r.status)...)
	b = append(b, "Date: "...)
	b = append(b, stamp.date...)
	b = append(b, "\r\n"...)
	if r.fixed != nil {
		b = append(b, r.fixed...)
	} else {
		b = r.appendFields(b)
	}
	switch {
	case !keep:
		b = append(b, "Connection: close\r\n"...)
	case minor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.wbuf = b
	if r.head || r.length <= 0 {
		return 0, true
	}
	if len(r.body.parts) == 0 {
		return c.writeSlice(st, r.body.off, r.body.n)
	}
	var sent int64
	for _, p := range r.body.parts {
		c.wbuf = append(c.wbuf, p.head...)
		n, ok := c.writeSlice(st, p.off, p.n)
		sent += int64(len(p.head)) + n
		if !ok {
			return sent, false
		}
	}
	c.wbuf = append(c.wbuf, r.body.tail...)
	return sent + int64(len(r.body.tail)), true
}

// writeSlice writes n bytes at off of the body's source after the
// buffered bytes.
func (c *conn) writeSlice(st *site, off, n int64) (int64, bool) {
	r := &c.resp
	if r.body.data != nil {
		data := r.body.data[off : off+n]
		if n <= copyBodyMax {
			c.wbuf = append(c.wbuf, data...)
			return n, true
		}
		c.extendWrite(c.clock(), st.cfg.WriteTimeout)
		bufs := net.Buffers(c.bufs[:0])
		bufs = append(bufs, c.wbuf, data)
		_, err := bufs.WriteTo(c.nc)
		c.wbuf = c.wbuf[:0]
		return n, err == nil
	}
	if !c.flushMore(st) {
		return 0, false
	}
	sent, err := c.sendFile(st, r.body.file, off, n)
	return sent, err == nil
}

// failHead answers a request whose head could not be read or parsed, and
// closes the connection.
func (c *conn) failHead(st *site, status int) {
	c.h = head{}
	c.resp.reset()
	c.resp.text(status, errorText(status))
	stamp := c.srv.clock.at(time.Now())
	c.writeResponse(st, stamp, false, 1)
	c.flush(st)
	c.log(stamp, status, c.resp.length, true)
	c.lingerClose()
}

// discardBody skips a request body of n bytes (GET with a body is legal,
// if odd) so the next request can be read, and reports success.
func (c *conn) discardBody(st *site, n int64) bool {
	for n > 0 {
		if c.start < c.end {
			k := min(n, int64(c.end-c.start))
			c.start += int(k)
			n -= k
			continue
		}
		if !c.flush(st) {
			return false
		}
		c.start, c.end = 0, 0
		c.setReadDeadline(time.Now().Add(st.cfg.ReadHeaderTimeout))
		m, err := c.nc.Read(c.rbuf)
		c.end = m
		if err != nil && m == 0 {
			return false
		}
	}
	return true
}

// lingerClose closes the connection after the client has read the answer:
// it shuts the sending side, then reads what the client still sends for a
// moment, so the kernel does not reset the connection (and the client
// lose the answer) because of unread request bytes.
func (c *conn) lingerClose() {
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(lingerTime))
		buf := c.rbuf
		for total := 0; total < discardBodyMax; {
			n, err := c.nc.Read(buf)
			total += n
			if err != nil {
				break
			}
		}
	}
	c.nc.Close()
}

// log writes the access log line of the last answer.
func (c *conn) log(stamp *stamp, status int, sent int64, noRequestLine bool) {
	l := c.srv.alog.Load()
	if l == nil {
		return
	}
	e := logEntry{
		remote: c.remote, method: c.h.method, target: c.h.target, minor: c.h.minor,
		status: status, bytes: sent, referer: c.h.referer, agent: c.h.userAgent,
		noRequestLine: noRequestLine, time: stamp,
	}
	c.line = appendLogLine(c.line[:0], &e)
	l.add(c.line)
}

// statusLine returns the HTTP/1.1 status line of code, with its CRLF.
func statusLine(code int) string {
	switch code {
	case 200:
		return "HTTP/1.1 200 OK\r\n"
	case 206:
		return "HTTP/1.1 206 Partial Content\r\n"
	case 304:
		return "HTTP/1.1 304 Not Modified\r\n"
	case 404:
		return "HTTP/1.1 404 Not Found\r\n"
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
}

// copyFile writes n bytes of h at off to the connection by reading them,
// where sendfile is not available.
func (c *conn) copyFile(st *site, h handle, off, n int64) (int64, error) {
	buf := make([]byte, min(n, 64<<10))
	var sent int64
	for sent < n {
		k, err := h.ReadAt(buf[:min(int64(len(buf)), n-sent)], off+sent)
		if k > 0 {
			c.extendWrite(time.Now(), st.cfg.WriteTimeout)
			w, werr := c.nc.Write(buf[:k])
			sent += int64(w)
			if werr != nil {
				return sent, werr
			}
		}
		if err != nil && (err != io.EOF || sent < n) {
			return sent, err
		}
	}
	return sent, nil
}

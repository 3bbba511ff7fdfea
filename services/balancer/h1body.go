package balancer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// relayResponse sends the backend's answer (head already read) to the
// client and streams its body.
func (x *exchange) relayResponse(raw []byte, inBuf bool) int {
	hc, cfg, req, resp, bc := x.hc, x.cfg, x.req, x.resp(), x.bc
	if resp.status == 101 && !req.upgrade {
		x.release(false)
		x.err = errors.New("switching protocols without an upgrade request")
		return exFailed
	}
	noBody := req.isHead || resp.status == 204 || resp.status == 304 || resp.status < 200
	closeDelimited := !noBody && !resp.chunked && resp.contentLength < 0
	clientKeep := !req.connClose && !closeDelimited && !(resp.chunked && req.minor == 0) && !hc.f.closing.Load()
	reusable := !resp.connClose && !closeDelimited && resp.minor == 1 && resp.status != 101

	wbp := writeBufs.Get().(*[]byte)
	defer func() { writeBufs.Put(wbp) }()
	w := x.appendResponseHead((*wbp)[:0], clientKeep)
	if inBuf {
		bc.br.Discard(len(raw)) // raw is not used after this
	}
	remaining := int64(0)
	if !noBody && resp.contentLength > 0 {
		remaining = resp.contentLength
		if n := int64(bc.br.Buffered()); n > 0 {
			n = min(n, remaining)
			body, _ := bc.br.Peek(int(n))
			w = append(w, body...)
			bc.br.Discard(int(n))
			remaining -= n
		}
	}
	*wbp = w
	hc.dl.armWrite(hc.c, cfg.ClientTimeout)
	if _, err := hc.c.Write(w); err != nil {
		x.release(false)
		x.err, x.clientErr = err, true
		return exCut
	}
	src := deadlineReader{bc.br, bc.c, cfg.ServerTimeout, &bc.dl}
	dst := deadlineWriter{hc.c, cfg.ClientTimeout, &hc.dl}
	var err error
	switch {
	case resp.status == 101:
		tunnel(hc.c, hc.br, bc.c, bc.br, cfg, x.be)
		x.release(false)
		x.keep = false
		return exDone
	case noBody:
	case resp.chunked:
		_, err = relayChunked(dst, src, req.minor == 1, 0)
	case remaining > 0:
		err = copyN(dst, src, remaining)
	case closeDelimited:
		err = copyAll(dst, src)
	}
	if err != nil {
		x.release(false)
		var we *writeError
		x.err, x.clientErr = err, errors.As(err, &we)
		return exCut
	}
	x.release(reusable)
	x.keep = clientKeep
	return exDone
}

// appendResponseHead writes the answer's head as the client gets it.
func (x *exchange) appendResponseHead(w []byte, clientKeep bool) []byte {
	return appendResponseHead(w, x.cfg, x.req, x.resp(), x.be, x.pinned, clientKeep)
}

// appendResponseHead writes the answer's head as the client gets it: the
// backend's status and fields minus hop-by-hop ones, with the persistence
// cookie and the framing and connection fields of the client's side.
func appendResponseHead(w []byte, cfg *Config, req, resp *head, be *backend, pinned, clientKeep bool) []byte {
	if req.minor == 1 {
		w = append(w, "HTTP/1.1 "...)
	} else {
		w = append(w, "HTTP/1.0 "...)
	}
	w = strconv.AppendInt(w, int64(resp.status), 10)
	w = append(w, ' ')
	w = append(w, resp.reason...)
	w = append(w, "\r\n"...)
	ck := cfg.Cookie
	hasCacheControl := false
	for _, f := range resp.fields {
		n := f.name
		if hopByHop(n) || (len(resp.connOptions) > 0 && resp.connOption(n)) {
			if resp.status == 101 && equalFold(n, "Upgrade") {
				w = appendField(w, n, f.value)
			}
			continue
		}
		if ck != nil && ck.Prefix && equalFold(n, "Set-Cookie") {
			if v, ok := prefixSetCookie(string(f.value), ck, be.name); ok {
				w = appendField(w, n, []byte(v))
				continue
			}
		}
		hasCacheControl = hasCacheControl || equalFold(n, "Cache-Control")
		w = appendField(w, n, f.value)
	}
	if ck != nil && !ck.Prefix && !pinned {
		w = append(w, "Set-Cookie: "...)
		w = append(w, ck.Name...)
		w = append(w, '=')
		w = append(w, be.name...)
		w = append(w, "; Path=/; HttpOnly\r\n"...)
		if !hasCacheControl {
			w = append(w, "Cache-Control: private, no-cache=\"set-cookie\"\r\n"...)
		}
	}
	if resp.chunked && req.minor == 1 {
		w = append(w, "Transfer-Encoding: chunked\r\n"...)
	}
	switch {
	case resp.status == 101:
		w = append(w, "Connection: upgrade\r\n"...)
	case !clientKeep:
		w = append(w, "Connection: close\r\n"...)
	case req.minor == 0:
		w = append(w, "Connection: keep-alive\r\n"...)
	}
	return append(w, "\r\n"...)
}

// tunnel joins client and backend after a protocol switch (WebSocket).
func tunnel(client net.Conn, cbr *bufio.Reader, server net.Conn, sbr *bufio.Reader, cfg *Config, be *backend) {
	if n := cbr.Buffered(); n > 0 {
		b, _ := cbr.Peek(n)
		server.SetWriteDeadline(time.Now().Add(cfg.ServerTimeout))
		if _, err := server.Write(b); err != nil {
			return
		}
		cbr.Discard(n)
	}
	if n := sbr.Buffered(); n > 0 {
		b, _ := sbr.Peek(n)
		client.SetWriteDeadline(time.Now().Add(cfg.ClientTimeout))
		if _, err := client.Write(b); err != nil {
			return
		}
		sbr.Discard(n)
	}
	splice(client, server, cfg.ClientTimeout, cfg.ServerTimeout, be)
}

// writeError marks a failure to write, telling which side failed.
type writeError struct{ err error }

func (e *writeError) Error() string { return "writing: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// errBodyTooLarge is a chunked request body over MaxBodyBytes.
var errBodyTooLarge = errors.New("request body too large")

// deadlines caches the read and write deadlines of a connection. Arming
// one again within a quarter of its timeout is skipped, which saves most
// deadline updates of a busy keep-alive connection: a wait is then bounded
// by between 3/4 and all of its timeout.
type deadlines struct{ rd, wd int64 } // unix nanoseconds; 0: none

func (dl *deadlines) armRead(c net.Conn, d time.Duration) {
	if want := time.Now().UnixNano() + int64(d); dl.rd == 0 || dl.rd > want || want-dl.rd > int64(d)/4 {
		c.SetReadDeadline(time.Unix(0, want))
		dl.rd = want
	}
}

func (dl *deadlines) armWrite(c net.Conn, d time.Duration) {
	if want := time.Now().UnixNano() + int64(d); dl.wd == 0 || dl.wd > want || want-dl.wd > int64(d)/4 {
		c.SetWriteDeadline(time.Unix(0, want))
		dl.wd = want
	}
}

// deadlineReader reads from a buffered connection, giving each wait for
// new data at most d.
type deadlineReader struct {
	br *bufio.Reader
	c  net.Conn
	d  time.Duration
	dl *deadlines // nil: arm every time
}

func (r deadlineReader) arm() {
	if r.br.Buffered() == 0 {
		if r.dl == nil {
			r.c.SetReadDeadline(time.Now().Add(r.d))
		} else {
			r.dl.armRead(r.c, r.d)
		}
	}
}

func (r deadlineReader) Read(p []byte) (int, error) {
	r.arm()
	return r.br.Read(p)
}

// deadlineWriter writes to a connection, each write bounded by d.
type deadlineWriter struct {
	c  net.Conn
	d  time.Duration
	dl *deadlines
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.dl.armWrite(w.c, w.d)
	n, err := w.c.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// copyN copies exactly n bytes; fewer is io.ErrUnexpectedEOF.
func copyN(dst io.Writer, src deadlineReader, n int64) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for n > 0 {
		k, err := src.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		if err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			if n > 0 {
				return err
			}
		}
	}
	return nil
}

// copyAll copies until src ends (a close-delimited body).
func copyAll(dst io.Writer, src deadlineReader) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var chunkWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// relayChunked copies a chunked body, checking its framing. With raw it
// passes the chunked framing on (to an HTTP/1.1 peer); without, only the
// data (to an HTTP/1.0 client, whose connection then closes). limit > 0
// bounds the data.
func relayChunked(dst io.Writer, src deadlineReader, raw bool, limit int64) (int64, error) {
	bw := chunkWriters.Get().(*bufio.Writer)
	bw.Reset(dst)
	defer func() {
		bw.Reset(nil)
		chunkWriters.Put(bw)
	}()
	readLine := func() ([]byte, error) {
		if src.br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return nil, err
			}
		}
		src.arm()
		line, err := src.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if err == bufio.ErrBufferFull {
				err = errors.New("chunk line too long")
			}
			return nil, err
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return nil, errors.New("malformed chunk line")
		}
		return line, nil
	}
	var total int64
	for {
		line, err := readLine()
		if err != nil {
			return total, err
		}
		size, ok := chunkSize(line[:len(line)-2])
		if !ok {
			return total, errors.New("malformed chunk size")
		}
		if raw {
			if _, err := bw.Write(line); err != nil {
				return total, err
			}
		}
		if size == 0 {
			for { // trailer fields, then the empty line
				line, err := readLine()
				if err != nil {
					return total, err
				}
				if raw {
					if _, err := bw.Write(line); err != nil {
						return total, err
					}
				}
				if len(line) == 2 {
					return total, bw.Flush()
				}
			}
		}
		total += size
		if limit > 0 && total > limit {
			return total, errBodyTooLarge
		}
		for size > 0 {
			if src.br.Buffered() == 0 {
				if err := bw.Flush(); err != nil {
					return total, err
				}
			}
			src.arm()
			p, err := src.br.Peek(int(min(size, int64(src.br.Size()))))
			if len(p) == 0 && err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return total, err
			}
			if len(p) == 0 {
				p, _ = src.br.Peek(src.br.Buffered())
			}
			if _, err := bw.Write(p); err != nil {
				return total, err
			}
			src.br.Discard(len(p))
			size -= int64(len(p))
		}
		crlf, err := readLine()
		if err != nil {
			return total, err
		}
		if len(crlf) != 2 {
			return total, errors.New("chunk data longer than its size")
		}
		if raw {
			if _, err := bw.Write(crlf); err != nil {
				return total, err
			}
		}
	}
}

// bconn is a connection to a backend.
type bconn struct {
	be     *backend // whose connection it is; set when dialed
	c      net.Conn
	br     *bufio.Reader
	dl     deadlines
	reused bool
	at     time.Time // when it went idle
}

var backendReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 2048) }}

func newBconn(c net.Conn) *bconn {
	br := backendReaders.Get().(*bufio.Reader)
	br.Reset(c)
	return &bconn{c: c, br: br}
}

func (bc *bconn) close() {
	bc.c.Close()
	if bc.br != nil {
		bc.br.Reset(nil)
		backendReaders.Put(bc.br)
		bc.br = nil
	}
}

// backendIdleTimeout is how long an idle backend connection is kept:
// shorter than Apache's default KeepAliveTimeout (5s), so the balancer
// closes it before the backend does.
const backendIdleTimeout = 4 * time.Second

// idlePool holds a backend's idle keep-alive connections, newest last.
type idlePool struct {
	mu    sync.Mutex
	conns []*bconn
}

func (p *idlePool) get(now time.Time) *bconn {
	p.mu.Lock()
	for n := len(p.conns); n > 0; n-- {
		bc := p.conns[n-1]
		p.conns[n-1] = nil
		p.conns = p.conns[:n-1]
		if now.Sub(bc.at) < backendIdleTimeout {
			p.mu.Unlock()
			return bc
		}
		bc.close()
	}
	p.mu.Unlock()
	return nil
}

func (p *idlePool) put(bc *bconn, now time.Time) {
	bc.at = now
	p.mu.Lock()
	if len(p.conns) < 1024 {
		p.conns = append(p.conns, bc)
		bc = nil
	}
	p.mu.Unlock()
	if bc != nil {
		bc.close()
	}
}

// sweep closes connections idle for longer than backendIdleTimeout (all
// of them when now is zero).
func (p *idlePool) sweep(now time.Time) {
	p.mu.Lock()
	keep := p.conns[:0]
	var old []*bconn
	for _, bc := range p.conns {
		if !now.IsZero() && now.Sub(bc.at) < backendIdleTimeout {
			keep = append(keep, bc)
		} else {
			old = append(old, bc)
		}
	}
	for i := len(keep); i < len(p.conns); i++ {
		p.conns[i] = nil
	}
	p.conns = keep
	p.mu.Unlock()
	for _, bc := range old {
		bc.close()
	}
}

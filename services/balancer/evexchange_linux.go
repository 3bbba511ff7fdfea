package balancer

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"golang.org/x/sys/unix"
)

// This file is an event loop's exchange with a backend: choose it,
// connect (or reuse a pooled connection), send the request, read the
// answer's head and relay the answer with back-pressure.

// choose picks a backend and takes a slot on it without waiting; a
// backend at its limit (its queue waits) or named by host name sends the
// request to the goroutine engine.
func (c *evClient) choose() {
	fe := &c.l.b.fe
	var be *backend
	if c.attempt == 0 && c.pinned != nil {
		be = c.pinned
	} else {
		be = c.pool.pick(c.key, c.hasKey, c.tried)
	}
	if be == nil {
		if !c.counted {
			fe.requests.Add(1)
		}
		fe.noBackend.Add(1)
		keep := !c.req.hasBody() && !c.req.connClose
		c.reply(http.StatusServiceUnavailable, "No server is available to handle this request.", keep)
		return
	}
	p := c.l.peer(be)
	if p.sa == nil || !be.tryAcquire() {
		c.handover(proxyStart{counted: c.counted, attempt: c.attempt, tried: c.tried, redispatched: c.redispatched}, false)
		return
	}
	if !c.counted {
		fe.requests.Add(1)
		c.counted = true
	}
	be.requests.Add(1)
	c.be, c.fresh = be, false
	c.connect()
}

// tryAcquire takes a slot on b if one is free and nobody is queued.
func (b *backend) tryAcquire() bool {
	m := int64(b.maxConn.Load())
	if m <= 0 {
		b.inflight.Add(1)
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight.Load() < m && len(b.queue) == 0 {
		b.inflight.Add(1)
		return true
	}
	return false
}

// connect takes an idle connection to the backend, or opens one (always
// when fresh).
func (c *evClient) connect() {
	l := c.l
	p := l.peer(c.be)
	if !c.fresh {
		if bc := p.get(l.now); bc != nil {
			c.bc, bc.c = bc, c
			c.send()
			return
		}
	}
	bc, done, err := p.dial()
	if err != nil {
		c.connectFailed(err)
		return
	}
	c.bc, bc.c = bc, c
	bc.writable = done
	if done {
		c.send()
		return
	}
	c.state = csConnect
	c.deadline = l.now.Add(c.cfg.ConnectTimeout)
}

// connectFailed counts a failed connect and retries on another backend,
// or answers 502.
func (c *evClient) connectFailed(err error) {
	if c.bc != nil {
		c.bc.close()
		c.bc = nil
	}
	b, be, cfg := c.l.b, c.be, c.cfg
	be.release()
	c.be = nil
	be.connErrors.Add(1)
	b.observeTraffic(be, false, shortErr(err))
	if c.attempt < cfg.Retries {
		be.retries.Add(1)
		b.fe.retries.Add(1)
		c.attempt++
		c.tried = be
		c.choose()
		return
	}
	b.fe.badGateway.Add(1)
	keep := !c.req.hasBody() && !c.req.connClose
	c.reply(http.StatusBadGateway, "The server could not be reached.", keep)
}

// send writes the request head (and its body) to the backend.
func (c *evClient) send() {
	l := c.l
	w := appendRequestHead(l.scratch[:0], c.cfg, &c.req, &c.clientInfo)
	hlen := c.reqLen - int(max(c.req.contentLength, 0))
	w = append(w, c.buf[c.r+hlen:c.r+c.reqLen]...)
	l.scratch = w[:0]
	c.start = time.Now()
	c.sendOut = w
	c.state = csSend
	c.deadline = l.now.Add(c.cfg.ServerTimeout)
	c.flushRequest()
}

// flushRequest writes what is left of the request.
func (c *evClient) flushRequest() {
	bc := c.bc
	n, err := rawWrite(bc.fd, c.sendOut)
	switch {
	case n == len(c.sendOut):
		c.sendOut = nil
		c.state = csWait
		c.deadline = c.l.now.Add(c.cfg.ServerTimeout)
		if bc.readable {
			c.readResponse()
		}
	case n > 0 || errors.Is(err, unix.EAGAIN):
		bc.writable = false
		// The rest waits for the backend: keep it out of the loop's
		// scratch, which the next head overwrites.
		c.sendOut = append([]byte(nil), c.sendOut[max(n, 0):]...)
	default:
		c.sendOut = nil
		reused := bc.reused
		bc.close()
		c.bc = nil
		if reused && !c.fresh {
			c.fresh = true // a stale keep-alive connection: once more, on a new one
			c.connect()
			return
		}
		c.failed(opError("write", err))
	}
}

// backendEvent moves the exchange on after its backend connection woke.
func (c *evClient) backendEvent() {
	bc := c.bc
	switch c.state {
	case csConnect:
		if !bc.writable {
			return
		}
		if err := bc.connectResult(); err != nil {
			c.connectFailed(err)
		} else {
			c.send()
		}
	case csSend:
		if bc.writable {
			c.flushRequest()
		}
	case csWait:
		if bc.readable {
			c.readResponse()
		}
	}
	if c.fd >= 0 {
		c.step() // the exchange may have moved on to the client's side
	}
}

// readResponse reads the answer's head.
func (c *evClient) readResponse() {
	bc := c.bc
	for {
		for bc.r < bc.w && (bc.buf[bc.r] == '\r' || bc.buf[bc.r] == '\n') {
			bc.r++
		}
		if bc.r < bc.w {
			if i := bytes.Index(bc.buf[bc.r:bc.w], crlfcrlf); i >= 0 {
				if i+4 > maxResponseHead {
					c.failed(errRespHeadTooLarge)
					return
				}
				c.response(i + 4)
				return
			}
		}
		if !bc.readable {
			return
		}
		_, err := bc.fill(maxResponseHead + 8)
		if err != nil {
			nothing := bc.w == 0
			reused := bc.reused
			bc.close()
			c.bc = nil
			if reused && !c.fresh && !c.req.hasBody() && nothing && !errors.Is(err, errRespHeadTooLarge) {
				c.fresh = true // closed while idle: the request never arrived
				c.connect()
				return
			}
			if errors.Is(err, errBackendEOF) && bc.w > 0 {
				err = errBadRequest // as readHead says of a head cut short
			}
			c.failed(err)
			return
		}
	}
}

// response handles the answer head of hlen bytes at the backend buffer's
// start: relayed here when it has a length or no body, else the
// connection goes to the goroutine engine.
func (c *evClient) response(hlen int) {
	l, bc, be, req := c.l, c.bc, c.be, &c.req
	resp := &l.resp
	if err := parseResponseHead(bc.buf[bc.r:bc.r+hlen], resp); err != nil {
		c.failed(err)
		return
	}
	noBody := req.isHead || resp.status == 204 || resp.status == 304
	if resp.status < 200 || resp.chunked || !noBody && resp.contentLength < 0 {
		c.handover(proxyStart{}, true)
		return
	}
	be.latency.observe(time.Since(c.start))
	l.b.observeTraffic(be, true, "")
	if resp.status >= 500 {
		be.http5xx.Add(1)
	}
	c.clientKeep = !req.connClose && !l.closing && !l.f.closing.Load()
	c.reusable = !resp.connClose && resp.minor == 1
	w := appendResponseHead(l.scratch[:0], c.cfg, req, resp, be, c.pinned == be, c.clientKeep)
	bc.r += hlen
	c.remaining = 0
	if !noBody && resp.contentLength > 0 {
		n := min(int64(bc.w-bc.r), resp.contentLength)
		w = append(w, bc.buf[bc.r:bc.r+int(n)]...)
		bc.r += int(n)
		c.remaining = resp.contentLength - n
	}
	l.scratch = w[:0]
	c.out, c.outScratch = w, true
	c.state = csRelay
	c.deadline = l.now.Add(c.cfg.ClientTimeout)
	c.step()
}

// writeOut writes what is pending for the client. It reports whether all
// of it is written; the rest of a partial write moves out of the loop's
// scratch into the connection's own storage.
func (c *evClient) writeOut() (bool, error) {
	if len(c.out) == 0 {
		return true, nil
	}
	if !c.writable {
		return false, nil
	}
	n, err := rawWrite(c.fd, c.out)
	if n == len(c.out) {
		c.out = nil
		return true, nil
	}
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		c.out = nil
		return false, opError("write", err)
	}
	c.writable = false
	rest := c.out[max(n, 0):]
	if c.outScratch {
		c.own = append(c.own[:0], rest...)
		rest = c.own
		c.outScratch = false
	}
	c.out = rest
	return false, nil
}

// pump writes the answer and streams the rest of its body from the
// backend, reading only when the client has taken what was read. It
// reports whether the state changed.
func (c *evClient) pump() bool {
	l, bc := c.l, c.bc
	for {
		done, err := c.writeOut()
		if err != nil {
			c.cut(err, true)
			return false
		}
		if !done {
			c.deadline = l.now.Add(c.cfg.ClientTimeout)
			return false
		}
		c.outScratch = false
		if c.remaining == 0 {
			c.finish()
			return c.fd >= 0
		}
		if !bc.readable {
			c.deadline = l.now.Add(c.cfg.ServerTimeout)
			return false
		}
		if c.stream == nil {
			c.stream = copyBuffers.Get().(*[]byte)
		}
		buf := (*c.stream)[:min(int64(len(*c.stream)), c.remaining)]
		n, err := rawRead(bc.fd, buf)
		switch {
		case n > 0:
			c.remaining -= int64(n)
			if n < len(buf) {
				bc.readable = bc.hup
			}
			c.out = buf[:n]
		case errors.Is(err, unix.EAGAIN):
			bc.readable = bc.hup
		case err == nil:
			c.cut(io.ErrUnexpectedEOF, false)
			return false
		default:
			c.cut(opError("read", err), false)
			return false
		}
	}
}

// finish ends an exchange whose answer was relayed in full.
func (c *evClient) finish() {
	l, bc, be := c.l, c.bc, c.be
	if c.stream != nil {
		copyBuffers.Put(c.stream)
		c.stream = nil
	}
	if c.reusable && bc.r == bc.w && !bc.hup {
		bc.dropBuf()
		bc.reused = true
		bc.p.put(bc, l.now)
	} else {
		bc.close()
	}
	c.bc, c.be = nil, nil
	be.release()
	c.r += c.reqLen
	c.reqLen = 0
	c.first = false
	if !c.clientKeep {
		c.close()
		return
	}
	c.enterHead()
}

// failed ends an exchange whose backend failed before answering: 504
// after a timeout, else 502; the client connection closes.
func (c *evClient) failed(err error) {
	b, be := c.l.b, c.be
	if c.bc != nil {
		c.bc.close()
		c.bc = nil
	}
	be.release()
	c.be = nil
	be.respErrors.Add(1)
	b.observeTraffic(be, false, shortErr(err))
	if isTimeout(err) {
		b.fe.timeouts.Add(1)
		c.reply(http.StatusGatewayTimeout, "The server didn't respond in time.", false)
	} else {
		b.fe.badGateway.Add(1)
		c.reply(http.StatusBadGateway, "The server returned an invalid or incomplete response.", false)
	}
}

// cut ends an exchange that broke after the answer began, or whose client
// is gone, and closes the client connection.
func (c *evClient) cut(err error, clientErr bool) {
	if c.stream != nil {
		copyBuffers.Put(c.stream)
		c.stream = nil
	}
	if c.bc != nil {
		c.bc.close()
		c.bc = nil
	}
	if be := c.be; be != nil {
		be.release()
		c.be = nil
		if err != nil && !clientErr {
			be.respErrors.Add(1)
			c.l.b.observeTraffic(be, false, shortErr(err))
		}
	}
	c.close()
}

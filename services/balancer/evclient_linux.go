package balancer

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"golang.org/x/sys/unix"
)

// States of a client connection in an event loop.
const (
	csHead    = iota // waiting for (the rest of) a request head
	csConnect        // connecting to the backend
	csSend           // writing the request to the backend
	csWait           // waiting for the answer's head
	csRelay          // writing the answer to the client, streaming its body
	csReply          // writing the balancer's own answer
	csLinger         // refused a request: half-closed, reading what still comes
)

var errBackendEOF = io.EOF

// errConnectTimeout is a backend connect that took too long.
var errConnectTimeout = errDeadline{}

// evClient is a client connection served by an event loop, and the
// exchange it has in flight.
type evClient struct {
	l   *evLoop
	fd  int
	seq uint32
	idx int // in l.clients
	clientInfo

	state    int
	readable bool
	writable bool
	hup      bool // the peer closed or reset: reads end at once
	first    bool // no request yet: the wait is the client timeout
	begun    bool // a byte of the next request arrived
	deadline time.Time

	buf        []byte // bytes read: buf[r:w] are not consumed yet
	r, w       int
	out        []byte // to write to the client
	outScratch bool   // out is in the loop's scratch
	own        []byte // out's storage once it cannot stay in the scratch

	// The request in flight, at buf[r:r+reqLen].
	cfg     *Config
	req     head
	reqLen  int
	counted bool
	pool    *pool
	key     uint64
	hasKey  bool
	pinned  *backend
	attempt int
	tried   *backend
	// redispatched: moved once when a backend was marked down.
	redispatched bool

	// The exchange with the backend.
	be         *backend // holds a slot on it while set
	bc         *evBackend
	fresh      bool // bc is a new connection (a stale one failed)
	sendOut    []byte
	start      time.Time
	remaining  int64 // body bytes still to relay
	clientKeep bool
	reusable   bool
	stream     *[]byte // body buffer from copyBuffers

	keepAfterReply bool
	lingered       int
}

func (c *evClient) event(ev uint32) {
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.hup = true // sticky: the end of input comes with no further edge
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.readable = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.writable = true
	}
	c.step()
}

// step advances the connection as far as it can go without waiting.
func (c *evClient) step() {
	for {
		var more bool
		switch c.state {
		case csHead:
			more = c.stepHead()
		case csRelay:
			more = c.pump()
		case csReply:
			more = c.stepReply()
		case csLinger:
			c.stepLinger()
		}
		if !more {
			return
		}
	}
}

// enterHead waits for the next request.
func (c *evClient) enterHead() {
	l := c.l
	if l.closing || l.f.closing.Load() {
		c.close()
		return
	}
	cfg := l.b.cfg.Load()
	c.state = csHead
	wait := cfg.KeepAlive
	if c.first {
		wait = cfg.ClientTimeout
	}
	c.deadline = l.now.Add(wait)
	if c.r == c.w {
		c.r, c.w = 0, 0
		if c.buf != nil {
			l.putBuf(c.buf)
			c.buf = nil
		}
		c.begun = false
	} else {
		c.begun = true
	}
}

// stepHead reads until a whole request head is buffered, then starts its
// exchange. It reports whether the state changed.
func (c *evClient) stepHead() bool {
	l := c.l
	for {
		// Empty lines before a request are skipped (RFC 9112 section 2.2).
		for c.r < c.w && (c.buf[c.r] == '\r' || c.buf[c.r] == '\n') {
			c.r++
		}
		cfg := l.b.cfg.Load()
		if c.r < c.w {
			if i := bytes.Index(c.buf[c.r:c.w], crlfcrlf); i >= 0 {
				if i+4 > cfg.MaxHeaderBytes {
					c.refuse(errHeadTooLarge)
					return true
				}
				c.request(cfg, i+4)
				return true
			}
			if c.w-c.r > cfg.MaxHeaderBytes {
				c.refuse(errHeadTooLarge)
				return true
			}
		}
		if !c.readable {
			return false
		}
		if c.buf == nil {
			c.buf = l.getBuf()
		}
		if c.w == len(c.buf) {
			if c.r > 0 {
				c.w = copy(c.buf, c.buf[c.r:c.w])
				c.r = 0
			} else {
				nb := make([]byte, min(2*len(c.buf), cfg.MaxHeaderBytes+8))
				copy(nb, c.buf[:c.w])
				l.putBuf(c.buf)
				c.buf = nb
			}
		}
		space := len(c.buf) - c.w
		n, err := rawRead(c.fd, c.buf[c.w:])
		switch {
		case n > 0:
			c.w += n
			c.begun = true
			if n < space {
				c.readable = c.hup
			}
		case errors.Is(err, unix.EAGAIN):
			c.readable = c.hup
		case err == nil && c.r < c.w:
			// The connection ended in the middle of a head.
			c.refuse(errBadRequest)
			return true
		default:
			c.close()
			return false
		}
	}
}

// refuse answers a request that cannot be parsed or is not allowed, then
// closes the connection.
func (c *evClient) refuse(he *httpError) {
	fe := &c.l.b.fe
	fe.requests.Add(1)
	fe.badRequests.Add(1)
	c.reply(he.code, he.msg, false)
}

// request starts the exchange of the request whose head is the next hlen
// bytes, or hands the connection to the goroutine engine.
func (c *evClient) request(cfg *Config, hlen int) {
	req := &c.req
	if err := parseRequestHead(c.buf[c.r:c.r+hlen], req); err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = errBadRequest
		}
		c.refuse(he)
		return
	}
	if equalFold(req.method, "CONNECT") {
		c.refuse(&httpError{http.StatusMethodNotAllowed, "CONNECT is not supported."})
		return
	}
	if cfg.MaxBodyBytes > 0 && req.contentLength > cfg.MaxBodyBytes {
		c.refuse(&httpError{http.StatusRequestEntityTooLarge, "The request body is too large."})
		return
	}
	body := max(req.contentLength, 0)
	if cfg.SendProxyV2 || req.upgrade || req.chunked || req.expectContinue && req.hasBody() || int64(c.w-c.r-hlen) < body {
		c.handover(proxyStart{}, false)
		return
	}
	c.cfg, c.reqLen = cfg, hlen+int(body)
	c.counted, c.attempt, c.tried, c.redispatched = false, 0, nil, false
	c.pool = c.l.b.pool.Load()
	c.key, c.hasKey = headKey(cfg, req, c.remote)
	c.pinned = pinnedOf(cfg, c.pool, req)
	c.choose()
}

// reply writes the balancer's own answer; without keep the connection
// then lingers and closes.
func (c *evClient) reply(code int, msg string, keep bool) {
	c.out, c.outScratch = replyBytes(code, msg, keep), false
	c.keepAfterReply = keep
	c.state = csReply
	c.deadline = c.l.now.Add(replyTimeout)
}

func (c *evClient) stepReply() bool {
	done, err := c.writeOut()
	if err != nil {
		c.close()
		return false
	}
	if !done {
		return false
	}
	if c.keepAfterReply {
		c.r += c.reqLen
		c.reqLen = 0
		c.first = false
		c.enterHead()
		return c.fd >= 0
	}
	// A lingering close, as net/http and HAProxy do: the client sees the
	// answer rather than a reset while it is still sending.
	if unix.Shutdown(c.fd, unix.SHUT_WR) != nil {
		c.close()
		return false
	}
	c.state = csLinger
	c.lingered = 0
	c.deadline = c.l.now.Add(500 * time.Millisecond)
	c.readable = true
	return true
}

func (c *evClient) stepLinger() {
	var buf [4096]byte
	for c.readable {
		n, err := rawRead(c.fd, buf[:])
		switch {
		case n > 0:
			c.lingered += n
			if c.lingered >= 1<<20 {
				c.close()
				return
			}
		case errors.Is(err, unix.EAGAIN):
			c.readable = c.hup
		default:
			c.close()
			return
		}
	}
}

// timeout handles a deadline that passed.
func (c *evClient) timeout() {
	b := c.l.b
	switch c.state {
	case csHead:
		if c.begun {
			// A request begun but not finished in time (slowloris).
			b.fe.requests.Add(1)
			b.fe.timeouts.Add(1)
			c.reply(http.StatusRequestTimeout, "The request took too long to arrive.", false)
			c.step()
			return
		}
		c.close()
	case csConnect:
		c.connectFailed(opError("dial", errConnectTimeout))
		c.step()
	case csSend, csWait:
		c.failed(errLoopTimeout)
		c.step()
	case csRelay:
		if len(c.out) > 0 {
			c.cut(errLoopTimeout, true)
		} else {
			c.cut(errLoopTimeout, false)
		}
	default:
		c.close()
	}
}

// close closes the client connection (and the backend one of an exchange
// still in flight, releasing its slot).
func (c *evClient) close() {
	if c.fd < 0 {
		return
	}
	l := c.l
	if c.bc != nil || c.be != nil {
		c.cut(nil, true) // calls close again
		return
	}
	l.closeFD(c.fd)
	c.fd = -1
	c.detach()
	l.b.fe.connsNow.Add(-1)
	l.f.active.Add(-1)
}

// detach takes the connection out of the loop's lists and frees its
// buffers.
func (c *evClient) detach() {
	l := c.l
	last := len(l.clients) - 1
	if c.idx <= last && l.clients[c.idx] == c {
		l.clients[c.idx] = l.clients[last]
		l.clients[c.idx].idx = c.idx
		l.clients[last] = nil
		l.clients = l.clients[:last]
		l.load.Store(int32(len(l.clients)))
	}
	if c.buf != nil {
		l.putBuf(c.buf)
		c.buf = nil
	}
	c.out, c.own = nil, nil
	c.state = csLinger
	c.deadline = time.Time{}
}

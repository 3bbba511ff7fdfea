package balancer

import (
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// adoption is a client connection an event loop hands to the goroutine
// engine, with the bytes it already read.
type adoption struct {
	fd    int
	pre   []byte // read from the client, not consumed
	ci    clientInfo
	start proxyStart
	mid   *midExchange
}

// midExchange is an exchange handed over after its request was sent and
// its answer's head arrived.
type midExchange struct {
	cfg     *Config
	be      *backend // a slot is held on it
	pinned  bool
	bfd     int
	reused  bool
	bpre    []byte // read from the backend, from the answer's head on
	reqHead []byte
	start   time.Time
}

// handover gives the connection to the goroutine engine: at a request
// boundary (mid false; st says how far the request got), or with its
// exchange under way (mid true: the answer's head is in the backend
// buffer).
func (c *evClient) handover(st proxyStart, mid bool) {
	l := c.l
	a := adoption{fd: c.fd, ci: c.clientInfo, start: st}
	l.forget(c.fd)
	c.fd = -1
	if mid {
		bc := c.bc
		l.forget(bc.fd)
		hlen := c.reqLen - int(max(c.req.contentLength, 0))
		a.mid = &midExchange{
			cfg: c.cfg, be: c.be, pinned: c.pinned == c.be, bfd: bc.fd, reused: bc.reused,
			bpre:    append([]byte(nil), bc.buf[bc.r:bc.w]...),
			reqHead: append([]byte(nil), c.buf[c.r:c.r+hlen]...),
			start:   c.start,
		}
		bc.fd = -1
		bc.dropBuf()
		c.bc, c.be = nil, nil
		a.pre = append([]byte(nil), c.buf[c.r+c.reqLen:c.w]...)
	} else {
		a.pre = append([]byte(nil), c.buf[c.r:c.w]...)
	}
	if c.stream != nil {
		copyBuffers.Put(c.stream)
		c.stream = nil
	}
	c.detach()
	l.f.wg.Add(1)
	go l.f.adopt(a)
}

// adopt serves a handed-over connection on this goroutine.
func (f *evFrontend) adopt(a adoption) {
	defer f.wg.Done()
	defer f.active.Add(-1)
	nc, err := fdConn(a.fd)
	if err != nil {
		f.b.fe.connsNow.Add(-1)
		if a.mid != nil {
			unix.Close(a.mid.bfd)
			a.mid.be.release()
		}
		return
	}
	hc := &h1conn{b: f.b, f: f.h1Frontend, c: &prefixConn{Conn: nc, pre: a.pre}, clientInfo: a.ci, start: a.start}
	f.mu.Lock()
	f.conns[hc] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, hc)
		f.mu.Unlock()
	}()
	var resume func() bool
	if m := a.mid; m != nil {
		resume = func() bool { return hc.resume(m) }
	}
	hc.serveFrom(resume)
}

// resume finishes an exchange an event loop began: the request was sent
// and the answer's head is the first thing m's backend bytes hold.
func (hc *h1conn) resume(m *midExchange) bool {
	cfg, be := m.cfg, m.be
	x := exchange{hc: hc, cfg: cfg, be: be, req: &hc.req, pinned: m.pinned}
	perr := parseRequestHead(m.reqHead, &hc.req)
	bnc, err := fdConn(m.bfd)
	if err != nil || perr != nil {
		if err == nil {
			bnc.Close()
			err = perr
		}
		be.release()
		x.err = err
		keep, _ := hc.outcome(&x, exFailed, cfg.Retries)
		return keep && perr == nil
	}
	x.bc = newBconn(&prefixConn{Conn: bnc, pre: m.bpre})
	x.bc.reused = m.reused
	hc.backend.Store(x.bc)
	x.bc.dl.armRead(x.bc.c, cfg.ServerTimeout)
	res, _ := x.receive(m.start, false)
	hc.backend.Store(nil)
	be.release()
	keep, _ := hc.outcome(&x, res, cfg.Retries)
	return keep
}

// fdConn makes a net.Conn of a socket descriptor, which it takes: fd is
// closed (the net.Conn has a duplicate), also on errors.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f) // a duplicate of fd
	f.Close()
	return c, err
}

// prefixConn is a connection whose first bytes were already read: Read
// returns them before reading the connection.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// CloseWrite half-closes the connection.
func (p *prefixConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

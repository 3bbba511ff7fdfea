package balancer

import (
	"net/http"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the event loops' part of abandoning the exchanges of a
// backend that is marked down (see markdown.go).

// abandon abandons the exchanges with be that have no answer yet: those of
// every loop (each in its own loop) and those of connections handed over
// to the goroutine engine.
func (f *evFrontend) abandon(be *backend) {
	f.lmu.Lock()
	loops := f.loops
	f.lmu.Unlock()
	for _, l := range loops {
		l.do(func(l *evLoop) { l.abandon(be) })
	}
	f.h1Frontend.abandon(be)
}

// abandon walks the loop's clients for exchanges with be that have no
// answer yet, and closes the loop's idle connections to be.
func (l *evLoop) abandon(be *backend) {
	if p := l.peers[be]; p != nil {
		p.sweep(l.now) // be is not usable: all of them
	}
	n := 0
	for i := 0; i < len(l.clients); {
		c := l.clients[i]
		if c.be == be && c.bc != nil && c.state >= csConnect && c.state <= csWait && c.abandon() {
			n++
			if c.fd >= 0 {
				c.step()
			}
		}
		if i < len(l.clients) && l.clients[i] == c {
			i++
		}
	}
	if n > 0 {
		l.b.log.Info("backend down: abandoned exchanges without an answer", "backend", be.name, "exchanges", n)
	}
}

// abandon ends the exchange with a backend that was marked down, unless
// a byte of its answer arrived: a request not sent yet, or safe to repeat
// (its body is always in the client buffer here), moves to another
// backend if it may; any other gets 502. It reports whether the exchange
// was abandoned.
func (c *evClient) abandon() bool {
	bc := c.bc
	sent := c.state != csConnect
	if sent && (bc.w > 0 || bc.pending()) {
		return false // the answer began
	}
	b, be, cfg := c.l.b, c.be, c.cfg
	bc.close()
	c.bc, c.sendOut = nil, nil
	be.release()
	c.be = nil
	if (!sent || safeToRepeat(&c.req)) && c.attempt < cfg.Retries && !c.redispatched {
		be.redispatch.Add(1)
		b.fe.retries.Add(1)
		c.attempt++
		c.tried = be
		c.redispatched = true
		c.choose()
		return true
	}
	b.fe.badGateway.Add(1)
	if !sent {
		keep := !c.req.hasBody() && !c.req.connClose
		c.reply(http.StatusBadGateway, "The server could not be reached.", keep)
		return true
	}
	be.respErrors.Add(1)
	c.reply(http.StatusBadGateway, "The server went down before answering.", false)
	return true
}

// pending reports whether bytes from the backend wait in the socket.
func (bc *evBackend) pending() bool {
	var b [1]byte
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(bc.fd), uintptr(unsafe.Pointer(&b[0])), 1, unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return e == 0 && n > 0
}

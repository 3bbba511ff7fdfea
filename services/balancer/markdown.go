package balancer

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// This file abandons the exchanges of a backend that is marked down, as
// HAProxy's "on-marked-down shutdown-sessions" with "option redispatch"
// does, but only where that is safe.
//
// A backend that lost power answers nothing: a request already sent to it
// would wait for the server timeout (or until its client gives up), even
// after the checks have marked the backend down. So when a backend is
// marked down (by its active checks or by passive detection), every
// exchange with it that has not received a byte of its answer yet is
// abandoned: its backend connection is closed, and
//
//   - a request that was not sent yet (still connecting) moves to another
//     usable backend, whatever its method;
//   - a request that was sent moves to another backend only if it is safe
//     to repeat (safeToRepeat) and its body, if any, is still held whole
//     by the balancer to be sent again;
//   - any other request gets 502 at once instead of hanging.
//
// A move counts as the request's retry (it needs a retry left under
// Config.Retries) and happens at most once per request; it is counted in
// the backend's redispatch counter. Exchanges whose answer has begun are
// left alone: they finish or fail as before.
//
// How each engine finds its exchanges, without any cost per request on the
// event loops' path:
//
//   - The event loops: a mark-down posts a command to every loop, which
//     walks its own client connections (evmarkdown_linux.go). A loop picks
//     a backend and registers the exchange in one step, and the command is
//     posted after the view without the backend was installed, so no
//     exchange begun before the mark-down is missed.
//   - The goroutine engine (the plain-HTTP frontend without event loops,
//     connections the loops handed over, HTTP/1 over TLS): an exchange
//     publishes its dial (dialing) or its backend connection (waiting)
//     on its h1conn, takes it back when the first byte of the answer
//     arrives, and checks backend.down after publishing; a mark-down sets
//     backend.down and then takes what is published on every connection.
//     One of the two always sees the other.
//
// HTTP/2 clients (through httputil.ReverseProxy) and the TCP mode are not
// covered: their requests wait for the server timeout as before.

// safeToRepeat reports whether the request may be sent to another backend
// after it reached one that then went down without answering: GET, HEAD,
// OPTIONS and TRACE (the safe methods of RFC 9110 section 9.2.1) without a
// chunked body. PUT and DELETE are idempotent too (section 9.2.2), but
// repeating them can reorder them with the client's later writes when the
// first copy did arrive; they get 502 like any other unsafe request.
// Engines further require that a body be held whole to resend.
func safeToRepeat(req *head) bool {
	if req.chunked || req.upgrade {
		return false
	}
	switch string(req.method) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// abandoner is a frontend that can abandon its exchanges with a backend.
type abandoner interface {
	abandon(be *backend)
}

// abandonExchanges abandons every exchange with be, which was just marked
// down, that has no answer yet.
func (b *Balancer) abandonExchanges(be *backend) {
	b.mu.Lock()
	fronts := b.abandoners
	b.mu.Unlock()
	for _, f := range fronts {
		f.abandon(be)
	}
}

// errAbandoned is an exchange abandoned because its backend was marked
// down.
var errAbandoned = errors.New("the backend was marked down before answering")

// dialWatch is a goroutine-engine dial in progress, for a mark-down of its
// backend to cancel.
type dialWatch struct {
	be     *backend
	cancel context.CancelFunc
}

// abandon closes the backend connections (and cancels the dials) of the
// goroutine engine's exchanges with be that have no answer yet. Each
// exchange sees its connection fail, finds that it was abandoned (claim)
// and moves or answers 502.
func (f *h1Frontend) abandon(be *backend) {
	n := 0
	f.mu.Lock()
	for hc := range f.conns {
		if d := hc.dialing.Load(); d != nil && d.be == be && hc.dialing.CompareAndSwap(d, nil) {
			d.cancel()
			n++
		}
		if bc := hc.waiting.Load(); bc != nil && bc.be == be && hc.waiting.CompareAndSwap(bc, nil) {
			bc.c.Close()
			n++
		}
	}
	f.mu.Unlock()
	if n > 0 {
		f.b.log.Info("backend down: abandoned exchanges without an answer", "backend", be.name, "exchanges", n)
	}
}

// dial connects to the exchange's backend, published on the connection
// so that a mark-down of the backend cancels it (errAbandoned).
func (x *exchange) dial() (net.Conn, error) {
	hc, be := x.hc, x.be
	ctx, cancel := context.WithTimeout(context.Background(), x.cfg.ConnectTimeout)
	defer cancel()
	d := &dialWatch{be: be, cancel: cancel}
	hc.dialing.Store(d)
	if be.down.Load() && hc.dialing.CompareAndSwap(d, nil) {
		cancel() // marked down before the dial was published
	}
	c, err := dialShallowContext(ctx, be.addr)
	if !hc.dialing.CompareAndSwap(d, nil) {
		if c != nil {
			c.Close()
		}
		return nil, errAbandoned
	}
	if err != nil {
		return nil, &dialError{err}
	}
	return c, nil
}

// watch publishes bc as waiting for the answer to the request about to be
// sent on it. If the backend is marked down already, the exchange is
// abandoned at once: the write fails and claim reports it.
func (x *exchange) watch(bc *bconn) {
	hc := x.hc
	x.watched = bc
	hc.waiting.Store(bc)
	if x.be.down.Load() && hc.waiting.CompareAndSwap(bc, nil) {
		bc.c.Close()
	}
}

// claim ends the watch of the exchange's backend connection (the answer
// began, or the exchange failed). It reports false when a mark-down
// abandoned the exchange first, and true when nothing was watched.
func (x *exchange) claim() bool {
	bc := x.watched
	if bc == nil {
		return true
	}
	x.watched = nil
	return x.hc.waiting.CompareAndSwap(bc, nil)
}

// abandoned answers an exchange abandoned on a mark-down: the request
// moves to another backend when it may (retry true), else 502.
func (hc *h1conn) abandoned(x *exchange, attempt int) (keep, retry bool) {
	b, be, cfg, req := hc.b, x.be, x.cfg, x.req
	safe := !x.sent || x.safe && (!req.hasBody() || x.keptBody)
	if safe && attempt < cfg.Retries && !x.redispatched {
		be.redispatch.Add(1)
		b.fe.retries.Add(1)
		return false, true
	}
	b.fe.badGateway.Add(1)
	if !x.sent {
		keep := !req.hasBody() && !req.connClose
		hc.reply(http.StatusBadGateway, "The server could not be reached.", keep)
		return keep, false
	}
	be.respErrors.Add(1)
	hc.reply(http.StatusBadGateway, "The server went down before answering.", false)
	return false, false
}

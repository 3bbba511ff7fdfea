package balancer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// This file sends one request to one backend over the HTTP/1 engine's
// pooled connections: connect, write the head (and a body already read),
// stream the rest of the body, read the answer's head.

// Outcomes of an exchange.
const (
	exDone          = iota // answered; x.keep says whether the client may go on
	exConnectFailed        // nothing sent: safe to try another backend
	exFailed               // the backend failed before answering: answer 502/504
	exTooLarge             // the request body passed MaxBodyBytes
	exCut                  // the exchange broke after the answer began, or the client left
	exAbandoned            // its backend was marked down before answering (markdown.go)
)

// exchange is one request sent to one backend.
type exchange struct {
	hc        *h1conn
	cfg       *Config
	be        *backend
	req       *head
	pinned    bool
	bc        *bconn
	keep      bool
	err       error
	clientErr bool

	// For a mark-down of the backend (markdown.go):
	safe         bool   // the request is safe to repeat (safeToRepeat)
	redispatched bool   // the request was moved once already
	sent         bool   // some of the request may have reached the backend
	keptBody     bool   // the body was sent from the client buffer and is still there
	watched      *bconn // published in hc.waiting
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (x *exchange) run() int {
	hc, cfg, req := x.hc, x.cfg, x.req
	for fresh := false; ; fresh = true {
		bc, err := x.connect(fresh)
		if err != nil {
			x.err = err
			if err == errAbandoned {
				return exAbandoned
			}
			return exConnectFailed
		}
		x.bc = bc
		hc.backend.Store(bc)
		x.watch(bc)
		start := time.Now()
		wbp := writeBufs.Get().(*[]byte)
		w := x.appendRequestHead((*wbp)[:0])
		bodySent := !req.hasBody()
		if req.contentLength > 0 && int64(hc.br.Buffered()) >= req.contentLength {
			body, _ := hc.br.Peek(int(req.contentLength))
			w = append(w, body...)
			bodySent = true
		}
		// A body that may have to go to another backend stays in the
		// buffer until the answer begins.
		x.keptBody = req.contentLength > 0 && bodySent && x.safe && !x.redispatched
		bc.dl.armWrite(bc.c, cfg.ServerTimeout)
		_, err = bc.c.Write(w)
		*wbp = w
		writeBufs.Put(wbp)
		x.sent = true
		if err != nil {
			bc.close()
			if !x.claim() {
				return exAbandoned
			}
			if bc.reused && !fresh {
				continue // a stale keep-alive connection: once more, on a new one
			}
			x.err = err
			return exFailed
		}
		if req.contentLength > 0 && bodySent && !x.keptBody {
			hc.br.Discard(int(req.contentLength))
		}
		if !bodySent {
			if r := x.sendBody(); r != exDone {
				bc.close()
				if !x.claim() {
					return exAbandoned
				}
				return r
			}
		}
		bc.dl.armRead(bc.c, cfg.ServerTimeout)
		res, retry := x.receive(start, !fresh)
		if retry {
			continue // closed while idle: the request never arrived
		}
		return res
	}
}

// receive reads the backend's answer to the request sent at start and
// relays it. With mayRetry, a reused connection that closed before
// answering a request without a body asks for a retry on a new one.
func (x *exchange) receive(start time.Time, mayRetry bool) (res int, retry bool) {
	bc, be := x.bc, x.be
	_, err := bc.br.Peek(1) // the first byte of the answer (or an error)
	if !x.claim() {
		bc.close()
		return exAbandoned, false
	}
	if x.keptBody {
		x.hc.br.Discard(int(x.req.contentLength))
		x.keptBody = false
	}
	var raw []byte
	var inBuf bool
	if err == nil {
		raw, inBuf, err = x.readResponseHead()
	}
	if err != nil {
		nothing := bc.br.Buffered() == 0
		bc.close()
		if mayRetry && bc.reused && !x.req.hasBody() && !isTimeout(err) && nothing {
			return 0, true
		}
		x.err = err
		return exFailed, false
	}
	be.latency.observe(time.Since(start))
	x.hc.b.observeTraffic(be, true, "")
	if x.resp().status >= 500 {
		be.http5xx.Add(1)
	}
	return x.relayResponse(raw, inBuf), false
}

func (x *exchange) resp() *head { return &x.hc.resp }

// connect returns a pooled keep-alive connection to the backend, or dials
// a new one (always when fresh).
func (x *exchange) connect(fresh bool) (*bconn, error) {
	hc, cfg, be := x.hc, x.cfg, x.be
	if cfg.SendProxyV2 {
		if hc.private != nil && hc.privateBe == be && !fresh {
			bc := hc.private
			hc.private, hc.privateBe = nil, nil
			return bc, nil
		}
		hc.dropPrivate()
	} else if !fresh {
		if bc := be.idle.get(time.Now()); bc != nil {
			return bc, nil
		}
	}
	c, err := x.dial()
	if err != nil {
		return nil, err
	}
	if cfg.SendProxyV2 {
		c.SetWriteDeadline(time.Now().Add(cfg.ServerTimeout))
		if _, err := c.Write(appendProxyV2(nil, hc.c.RemoteAddr(), hc.c.LocalAddr())); err != nil {
			c.Close()
			return nil, &dialError{err}
		}
	}
	bc := newBconn(c)
	bc.be = be
	return bc, nil
}

// release returns the backend connection for reuse, or closes it.
func (x *exchange) release(reusable bool) {
	bc := x.bc
	x.bc = nil
	if !reusable {
		bc.close()
		return
	}
	bc.reused = true
	if x.cfg.SendProxyV2 {
		x.hc.dropPrivate()
		x.hc.private, x.hc.privateBe = bc, x.be
		return
	}
	x.be.idle.put(bc, time.Now())
}

// appendRequestHead writes the request head as the backend gets it: the
// client's request line and fields minus hop-by-hop ones, plus the
// balancer's forwarding headers.
func (x *exchange) appendRequestHead(w []byte) []byte {
	return appendRequestHead(w, x.cfg, x.req, &x.hc.clientInfo)
}

// clientInfo is what the forwarding headers say about a client connection.
type clientInfo struct {
	remote string // ip:port
	ip     string
	tls    bool
}

func appendRequestHead(w []byte, cfg *Config, req *head, ci *clientInfo) []byte {
	w = append(w, req.method...)
	w = append(w, ' ')
	w = append(w, req.target...)
	w = append(w, ' ')
	w = append(w, req.proto...)
	w = append(w, "\r\n"...)
	fwd := cfg.Forwarded != "none"
	for _, f := range req.fields {
		n := f.name
		if hopByHop(n) || (len(req.connOptions) > 0 && req.connOption(n)) {
			if req.upgrade && equalFold(n, "Upgrade") {
				w = appendField(w, n, f.value)
			}
			continue
		}
		if fwd && (equalFold(n, "X-Forwarded-For") || equalFold(n, "X-Forwarded-Host") || equalFold(n, "X-Forwarded-Proto") || equalFold(n, "Forwarded")) {
			continue
		}
		if equalFold(n, "Expect") {
			continue // answered by the balancer
		}
		if cfg.Cookie != nil && equalFold(n, "Cookie") {
			if v, _ := stripPersistenceLine(string(f.value), cfg.Cookie); v != "" {
				w = appendField(w, n, []byte(v))
			}
			continue
		}
		w = appendField(w, n, f.value)
	}
	if cfg.Forwarded == "xff" || cfg.Forwarded == "both" {
		if ci.ip != "" {
			w = append(w, "X-Forwarded-For: "...)
			w = append(w, ci.ip...)
			w = append(w, "\r\n"...)
		}
		if len(req.host) > 0 {
			w = appendField(w, []byte("X-Forwarded-Host"), req.host)
		}
		if ci.tls {
			w = append(w, "X-Forwarded-Proto: https\r\n"...)
		} else {
			w = append(w, "X-Forwarded-Proto: http\r\n"...)
		}
	}
	if cfg.Forwarded == "rfc7239" || cfg.Forwarded == "both" {
		w = append(w, "Forwarded: "...)
		w = appendForwarded(w, ci.remote, req.host, ci.tls)
		w = append(w, "\r\n"...)
	}
	if req.chunked {
		w = append(w, "Transfer-Encoding: chunked\r\n"...)
	}
	if req.upgrade {
		w = append(w, "Connection: upgrade\r\n"...)
	} else if req.minor == 0 {
		w = append(w, "Connection: keep-alive\r\n"...)
	}
	return append(w, "\r\n"...)
}

func appendField(w, name, value []byte) []byte {
	w = append(w, name...)
	w = append(w, ": "...)
	w = append(w, value...)
	return append(w, "\r\n"...)
}

// appendForwarded appends an RFC 7239 element: for=...;host=...;proto=...
func appendForwarded(w []byte, remote string, host []byte, tls bool) []byte {
	w = append(w, "for="...)
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		if a := ap.Addr().Unmap(); a.Is4() {
			w = a.AppendTo(w)
		} else {
			w = append(w, `"[`...)
			w = a.AppendTo(w)
			w = append(w, `]"`...)
		}
	} else {
		w = append(w, "unknown"...)
	}
	if len(host) > 0 && isForwardedToken(string(host)) {
		w = append(w, ";host="...)
		w = append(w, host...)
	}
	if tls {
		return append(w, ";proto=https"...)
	}
	return append(w, ";proto=http"...)
}

// sendBody streams the rest of the request body to the backend.
func (x *exchange) sendBody() int {
	hc, cfg, req := x.hc, x.cfg, x.req
	src := deadlineReader{hc.br, hc.c, cfg.ClientTimeout, &hc.dl}
	dst := deadlineWriter{x.bc.c, cfg.ServerTimeout, &x.bc.dl}
	var err error
	if req.chunked {
		_, err = relayChunked(dst, src, true, cfg.MaxBodyBytes)
	} else {
		err = copyN(dst, src, req.contentLength)
	}
	if err == nil {
		return exDone
	}
	if errors.Is(err, errBodyTooLarge) {
		return exTooLarge
	}
	var we *writeError
	if errors.As(err, &we) {
		x.err = err
		return exFailed
	}
	x.err, x.clientErr = err, true
	return exCut
}

// maxResponseHead bounds a backend's answer head.
const maxResponseHead = 64 << 10

// readResponseHead reads the backend's answer head, passing 1xx
// informational answers (but 100 Continue, which the balancer sent
// itself) on to the client.
func (x *exchange) readResponseHead() ([]byte, bool, error) {
	for {
		raw, inBuf, err := readHead(x.bc.br, maxResponseHead, &x.hc.rspill)
		if err != nil {
			return nil, false, err
		}
		if err := parseResponseHead(raw, x.resp()); err != nil {
			return nil, false, err
		}
		st := x.resp().status
		if st >= 200 || st == 101 {
			return raw, inBuf, nil
		}
		if st != 100 && x.req.minor == 1 {
			x.hc.dl.armWrite(x.hc.c, x.cfg.ClientTimeout)
			if _, err := x.hc.c.Write(raw); err != nil {
				return nil, false, err
			}
		}
		if inBuf {
			x.bc.br.Discard(len(raw))
		}
	}
}

// dialShallow connects on a short-lived goroutine of its own. Dialing runs
// deep in the net package; done on a client connection's goroutine it
// would double that goroutine's stack for the connection's lifetime, which
// at a thousand connections is megabytes.
func dialShallow(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dialShallowContext(ctx, addr)
}

// dialShallowContext is dialShallow until ctx is done.
func dialShallowContext(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

package admin

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// The admin port serves two protocols: a connection whose first byte is a
// TLS handshake record (0x16) gets the authenticated API, any other gets
// plain HTTP. Plain HTTP answers the node itself (loopback) in full, as
// before authentication existed, and everyone else only GET /status and
// GET /health: the read-only facts a dashboard or a load balancer polls
// (and, on load balancers, GET /dashboard, which gathers them).

// tlsHandshake is the first byte of a TLS record carrying a handshake.
const tlsHandshake = 0x16

// PlainHandler is the API over plain HTTP: every route (service commands
// included) for requests from the loopback address, only GET /status and GET /health for others.
func (s *Server) PlainHandler() http.Handler {
	full := http.NewServeMux()
	full.Handle("/", s.Handler())
	s.mountControl(full)
	public := http.NewServeMux()
	public.HandleFunc("GET /status", s.serveStatus)
	public.HandleFunc("GET /health", s.serveHealth)
	s.mountDashboard(public) // read-only: the /status of the nodes, gathered
	public.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "over plain HTTP only GET /status and GET /health; use HTTPS with the cluster's token (piimage update, piimage rollout)", http.StatusForbidden)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fromLoopback(r.RemoteAddr) {
			full.ServeHTTP(w, r)
			return
		}
		public.ServeHTTP(w, r)
	})
}

// SecureHandler is the API over TLS: every route of Handler, the service
// commands, and the OTA routes when o is not nil, all behind the bearer
// token.
func (s *Server) SecureHandler(c *Credentials, o *OTA) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	s.mountControl(mux)
	if o != nil {
		o.register(mux)
	}
	return c.Middleware(mux)
}

// ServeSplit serves secure (over TLS with tlsConfig) and plain on every
// listener, telling them apart by the first byte of each connection; with
// a nil tlsConfig every connection gets plain. It runs until ctx is done,
// then shuts down, giving requests in flight two seconds (an update upload
// in flight is cut). It returns the first serving error
// other than the shutdown.
func ServeSplit(ctx context.Context, lns []net.Listener, tlsConfig *tls.Config, secure, plain http.Handler) error {
	tlsLn := newChanListener(lns[0].Addr())
	plainLn := newChanListener(lns[0].Addr())
	servers := []*http.Server{
		// Uploads take minutes: no read timeout beyond the header's.
		{Handler: secure, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute},
		{Handler: plain, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute},
	}
	errc := make(chan error, len(lns)+2)
	var wg sync.WaitGroup
	if tlsConfig != nil {
		wg.Go(func() { errc <- servers[0].Serve(tls.NewListener(tlsLn, tlsConfig)) })
	} else {
		tlsLn = nil
	}
	wg.Go(func() { errc <- servers[1].Serve(plainLn) })
	for _, ln := range lns {
		wg.Go(func() { errc <- split(ln, tlsLn, plainLn) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, ln := range lns {
		ln.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	if tlsLn != nil {
		tlsLn.Close()
	}
	plainLn.Close()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("serving the admin API: %w", err)
	}
	return nil
}

// split accepts connections from ln and hands each to tlsLn or plainLn by
// its first byte. Accept errors other than a closed listener (a connection reset while
// queued, too many open files) are waited out, as net/http does: an
// upload in flight must not end because another client gave up.
func split(ln net.Listener, tlsLn, plainLn *chanListener) error {
	delay := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		if err != nil {
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			b, err := br.Peek(1)
			c.SetReadDeadline(time.Time{})
			if err != nil {
				c.Close()
				return
			}
			pc := &peekedConn{Conn: c, r: br}
			if b[0] == tlsHandshake && tlsLn != nil {
				tlsLn.deliver(pc)
			} else {
				plainLn.deliver(pc)
			}
		}()
	}
}

// peekedConn is a connection whose first bytes sit in a bufio.Reader.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by split.
type chanListener struct {
	addr      net.Addr
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

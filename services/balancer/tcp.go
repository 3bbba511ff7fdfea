package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
)

// errTooManyFiles is the accept error that passes once connections close.
var errTooManyFiles = syscall.EMFILE

// tcpFrontend is the listener of mode tcp: each client connection is
// joined to a connection to one backend and bytes are copied both ways.
type tcpFrontend struct {
	b       *Balancer
	ln      net.Listener
	closing atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
}

func (b *Balancer) listenTCP(cfg *Config) (frontend, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	b.addrs.Lock()
	b.addrs.main = ln.Addr()
	b.addrs.Unlock()
	return &tcpFrontend{b: b, ln: netutil.LimitListener(ln, cfg.MaxConn), conns: map[net.Conn]struct{}{}}, nil
}

func (f *tcpFrontend) serve() error {
	return acceptLoop(f.ln, &f.closing, func(c net.Conn) {
		f.mu.Lock()
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			f.b.handleTCP(c)
			f.mu.Lock()
			delete(f.conns, c)
			f.mu.Unlock()
		}()
	})
}

func (f *tcpFrontend) shutdown(ctx context.Context) {
	f.closing.Store(true)
	f.ln.Close()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		<-done
	}
}

func (f *tcpFrontend) close() {
	f.closing.Store(true)
	f.ln.Close()
}

// handleTCP serves one client connection: pick a backend, connect (trying
// another backend if that fails), then copy until both sides are done.
func (b *Balancer) handleTCP(c net.Conn) {
	defer c.Close()
	b.fe.connsNow.Add(1)
	b.fe.connsTotal.Add(1)
	b.fe.requests.Add(1)
	defer b.fe.connsNow.Add(-1)
	cfg := b.cfg.Load()
	p := b.pool.Load()
	var key uint64
	var hasKey bool
	if cfg.Algorithm == "source" {
		key, hasKey = sourceKey(c.RemoteAddr().String())
	}
	var tried *backend
	for attempt := 0; ; attempt++ {
		be, err := p.acquire(context.Background(), key, hasKey, tried)
		if err != nil {
			b.fe.noBackend.Add(1)
			return
		}
		start := time.Now()
		bc, err := dialShallow(be.addr, cfg.ConnectTimeout)
		if err != nil {
			be.release()
			be.connErrors.Add(1)
			b.observeTraffic(be, false, shortErr(err))
			if attempt < cfg.Retries {
				be.retries.Add(1)
				b.fe.retries.Add(1)
				tried = be
				continue
			}
			b.fe.badGateway.Add(1)
			return
		}
		be.latency.observe(time.Since(start))
		b.observeTraffic(be, true, "")
		if cfg.SendProxyV2 {
			bc.SetWriteDeadline(time.Now().Add(cfg.ServerTimeout))
			if _, err := bc.Write(appendProxyV2(nil, c.RemoteAddr(), c.LocalAddr())); err != nil {
				bc.Close()
				be.release()
				be.respErrors.Add(1)
				return
			}
		}
		if err := splice(c, bc, cfg.ClientTimeout, cfg.ServerTimeout, be); err != nil {
			be.respErrors.Add(1)
			b.log.Debug("tcp connection ended with an error", "backend", be.name, "err", err)
		}
		bc.Close()
		be.release()
		return
	}
}

// splice copies client<->server until both directions end. A direction
// waits at most its timeout for data while the other is also idle, like
// HAProxy's "timeout client" and "timeout server"; an end of stream is
// passed on as a half-close.
func splice(client, server net.Conn, clientTimeout, serverTimeout time.Duration, be *backend) error {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	errc := make(chan error, 2)
	go func() { errc <- pipe(server, client, clientTimeout, &last, &be.bytesOut) }()
	go func() { errc <- pipe(client, server, serverTimeout, &last, &be.bytesIn) }()
	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
			// Unblock the other direction.
			client.Close()
			server.Close()
		}
	}
	return first
}

// pipe copies src to dst until src ends (then half-closes dst) or fails.
func pipe(dst, src net.Conn, timeout time.Duration, last *atomic.Int64, count *atomic.Uint64) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		src.SetReadDeadline(time.Now().Add(timeout))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			dst.SetWriteDeadline(time.Now().Add(timeout))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return fmt.Errorf("writing: %w", werr)
			}
			count.Add(uint64(n))
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < timeout {
			continue // the other direction is busy: keep waiting
		}
		return fmt.Errorf("reading: %w", err)
	}
}

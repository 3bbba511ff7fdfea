package balancer

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// listenTLS opens the TLS frontend: HTTP/1.1 clients are served by the
// HTTP/1 engine like plain ones, HTTP/2 clients by net/http's server with
// the ReverseProxy handler.
func (b *Balancer) listenTLS(cfg *Config) (frontend, error) {
	ln, err := net.Listen("tcp", cfg.TLS.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.TLS.Addr, err)
	}
	b.addrs.Lock()
	b.addrs.tls = ln.Addr()
	b.addrs.Unlock()
	protos := []string{"h2", "http/1.1"}
	if cfg.TLS.NoHTTP2 {
		protos = []string{"http/1.1"}
	}
	f := &h1Frontend{
		b:       b,
		ln:      netutil.LimitListener(ln, cfg.MaxConn),
		conns:   map[*h1conn]struct{}{},
		tlsConf: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: b.getCertificate, NextProtos: protos},
		h2ln:    &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()},
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	f.h2srv = &http.Server{
		Handler:        b.newHTTPProxy(),
		IdleTimeout:    cfg.KeepAlive,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		Protocols:      &p,
		ErrorLog:       slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				b.fe.connsNow.Add(1)
				b.fe.connsTotal.Add(1)
			case http.StateClosed, http.StateHijacked:
				b.fe.connsNow.Add(-1)
			}
		},
	}
	return f, nil
}

// chanListener hands connections that were accepted (and TLS-handshaken)
// elsewhere to an http.Server.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
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
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// push gives c to the server, or closes it when the listener is closed.
func (l *chanListener) push(c net.Conn) {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	case <-t.C:
		c.Close()
	}
}

// certSet is the loaded TLS certificates; the first is the default.
type certSet struct {
	certs []*tls.Certificate
}

// loadCerts reads every certificate and key pair.
func loadCerts(files []CertFiles) (*certSet, error) {
	cs := &certSet{}
	for _, f := range files {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate %s: %w", f.Cert, err)
		}
		cs.certs = append(cs.certs, &c)
	}
	return cs, nil
}

// getCertificate chooses the certificate for the server name the client
// asked for (SNI), or the first one when none matches.
func (b *Balancer) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cs := b.certs.Load()
	if cs == nil || len(cs.certs) == 0 {
		return nil, fmt.Errorf("no TLS certificate loaded")
	}
	if hello.ServerName != "" {
		for _, c := range cs.certs {
			if hello.SupportsCertificate(c) == nil {
				return c, nil
			}
		}
	}
	return cs.certs[0], nil
}

package balancer

import (
	"bufio"
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/http"
	"time"
)

// restartCheckers starts a check loop for every checked backend of the
// current pool and stops the others. Called with b.mu held.
func (b *Balancer) restartCheckers() {
	cfg := b.cfg.Load()
	want := map[*backend]bool{}
	if cfg.Check.Type != "none" {
		for _, be := range b.pool.Load().backends {
			if !be.noCheck.Load() {
				want[be] = true
			}
		}
	}
	for be, cancel := range b.checkers {
		if !want[be] {
			cancel()
			delete(b.checkers, be)
		}
	}
	for be := range want {
		if _, ok := b.checkers[be]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(b.runCtx)
		b.checkers[be] = cancel
		go b.checkLoop(ctx, be)
	}
}

// checkLoop checks be every interval until ctx is done. The first check
// comes after a random part of the interval so that checks of many
// backends spread out.
func (b *Balancer) checkLoop(ctx context.Context, be *backend) {
	first := time.Duration(maphash.String(maphash.MakeSeed(), be.name) % uint64(b.cfg.Load().Check.Interval))
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cfg := b.cfg.Load()
		start := time.Now()
		ok, msg := b.probe(ctx, cfg, be)
		if ctx.Err() != nil {
			return
		}
		b.observeCheck(be, ok, msg, time.Since(start))
		t.Reset(cfg.Check.Interval)
	}
}

// probe runs one health check of be: a TCP connect, or an HTTP GET whose
// answer must be 2xx or 3xx. Each check uses a new connection, like
// HAProxy's, so a backend that no longer accepts is seen.
func (b *Balancer) probe(ctx context.Context, cfg *Config, be *backend) (ok bool, msg string) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Check.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", be.addr)
	if err != nil {
		return false, "connect: " + shortErr(err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if cfg.SendProxyV2 {
		if _, err := conn.Write(appendProxyV2Local(nil)); err != nil {
			return false, "PROXY header: " + shortErr(err)
		}
	}
	if cfg.Check.Type != "http" {
		return true, "connected"
	}
	host := cfg.Check.Host
	if host == "" {
		host = be.addr
	}
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: piimage-balancer-check\r\nConnection: close\r\n\r\n", cfg.Check.Path, host)
	if err != nil {
		return false, "sending check: " + shortErr(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		return false, "reading answer: " + shortErr(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return true, fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// shortErr drops the "dial tcp 1.2.3.4:80:" noise from network errors.
func shortErr(err error) string {
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		return oe.Err.Error()
	}
	if err == context.DeadlineExceeded {
		return "timeout"
	}
	return err.Error()
}

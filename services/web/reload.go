package web

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/piimage/piimage/overlays"
)

// Reload applies a changed overlay: see ReloadConfig.
func (s *Server) Reload(node *overlays.Node) error {
	cfg, err := ConfigFromNode(node)
	if err != nil {
		s.refuse(err)
		return err
	}
	return s.ReloadConfig(cfg)
}

// ReloadConfig applies cfg without dropping connections: requests in
// flight finish on the old settings, later ones use the new. Everything
// the new settings need (web root, certificate, log file, a new listen
// address) is opened first; if any of it fails, the server keeps its old
// settings, returns the error and reports it in Health until a reload
// succeeds. Before Run, it only replaces the settings Run will use.
func (s *Server) ReloadConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		s.refuse(err)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running || s.stopping {
		s.cfg = cfg
		return nil
	}
	if err := s.apply(cfg); err != nil {
		err = fmt.Errorf("%w (reload refused; still serving the previous settings)", err)
		s.err = err
		s.log.Error("web reload refused", "err", err)
		return err
	}
	s.cfg = cfg
	s.err = nil
	s.log.Info("web settings reloaded")
	return nil
}

func (s *Server) refuse(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		s.err = fmt.Errorf("%w (reload refused; still serving the previous settings)", err)
	}
}

// apply opens what the new settings need, then switches to them. It runs
// with s.mu held.
func (s *Server) apply(cfg Config) (err error) {
	old := s.cfg.withDefaults()
	nc := cfg.withDefaults()
	ctx := context.Background()
	var undo []func()
	defer func() {
		if err != nil {
			for _, f := range undo {
				f()
			}
		}
	}()

	st, err := s.newSite(&nc)
	if err != nil {
		return err
	}
	undo = append(undo, st.tree.close)
	var cert *tls.Certificate
	var certID [2]fileID
	if nc.tlsOn() {
		if cert, certID, err = loadCert(&nc); err != nil {
			return err
		}
	}
	logChanged := nc.NoAccessLog != old.NoAccessLog || nc.AccessLogFile != old.AccessLogFile ||
		nc.AccessLog != old.AccessLog || nc.AccessLogBuffer != old.AccessLogBuffer
	var alog *accessLog
	if logChanged {
		if alog, err = newAccessLog(&nc, s.log); err != nil {
			return fmt.Errorf("web: %w", err)
		}
		undo = append(undo, func() { closeLog(alog) })
	}
	var pl *listener
	if nc.Listen != old.Listen {
		if pl, err = s.listen(ctx, &nc, nc.Listen); err != nil {
			return err
		}
		undo = append(undo, pl.close)
	}
	// HTTPS restarts only when it is turned on or off or moves; a new
	// certificate is swapped in place. (Its timeouts and header limit
	// change with the next restart.)
	tlsChanged := nc.tlsOn() != old.tlsOn() || nc.tlsOn() && nc.TLSListen != old.TLSListen
	var tlsLn net.Listener
	if tlsChanged && nc.tlsOn() {
		if tlsLn, err = s.listenTLS(ctx, &nc); err != nil {
			return err
		}
	}

	// Everything opened: switch.
	s.site.Store(st)
	if cert != nil {
		s.cert.Store(cert)
		s.certID = certID
		s.certErr = nil
	}
	if logChanged {
		if prev := s.alog.Swap(alog); prev != nil {
			// Connections may still hold the old log for a moment.
			time.AfterFunc(time.Second, prev.close)
		}
	}
	if pl != nil {
		prev := s.plain
		s.plain = pl
		go s.acceptLoop(pl)
		prev.close()
		s.retireConns(prev)
	}
	if tlsChanged {
		s.swapTLS(&nc, tlsLn)
	}
	return nil
}

// swapTLS replaces the HTTPS server by one on ln (none when ln is nil);
// the old one finishes its requests in flight. It runs with s.mu held.
func (s *Server) swapTLS(cfg *Config, ln net.Listener) {
	prev := s.tlsSrv
	s.tlsSrv, s.tlsLn = nil, nil
	if prev != nil {
		grace := cfg.GracePeriod
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			if prev.Shutdown(ctx) != nil {
				prev.Close()
			}
		}()
	}
	if ln != nil {
		s.serveTLS(cfg, ln)
	}
}

package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piimage/piimage/services/mirror/wire"
)

// keepPartial is the size from which a transfer cut off is kept as the
// basis of the next try.
const keepPartial = 1 << 20

// replica keeps its root equal to the primary's.
type replica struct {
	cfg Config
	log *slog.Logger
	st  *counters
	ex  *excluder
	loc *local

	// remote is the primary's tree as last heard, kept across sessions.
	// Owned by the session goroutine.
	remote map[string]wire.Item
	// rootDir is the root folder open for syncfs.
	rootDir *os.File
	// gens switches the whole tree at once (Config.AtomicTree); the
	// syncer then writes the working copy gens.stage.
	gens *generations

	mu    sync.Mutex
	view  ReplicaStatus
	audit atomic.Bool
}

func newReplica(cfg Config, log *slog.Logger, st *counters) (*replica, error) {
	ex, err := newExcluder(cfg.Excludes)
	if err != nil {
		return nil, err
	}
	return &replica{cfg: cfg, log: log, st: st, ex: ex, remote: map[string]wire.Item{},
		view: ReplicaStatus{Name: cfg.Name, Addr: cfg.Primary}}, nil
}

// run keeps a session with the primary up until ctx is done, reconnecting
// with backoff.
func (r *replica) run(ctx context.Context) error {
	dir := r.cfg.Root
	if r.cfg.AtomicTree {
		r.gens = newGenerations(r.cfg.Root, r.cfg.GenerationGrace, r.ex, r.log)
		if err := r.gens.setup(); err != nil {
			return fmt.Errorf("setting up whole-tree switches: %w", err)
		}
		dir = r.gens.stage
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating web root: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening web root: %w", err)
	}
	defer root.Close()
	if r.rootDir, err = os.Open(dir); err != nil {
		return fmt.Errorf("opening web root: %w", err)
	}
	defer r.rootDir.Close()
	r.loc = &local{root: root, dir: dir, fsync: !r.cfg.NoFsync, log: r.log}
	defer r.loc.closeDirs()

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(r.cfg.ScanInterval)
		defer t.Stop()
		gc := time.NewTicker(time.Second)
		defer gc.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				r.audit.Store(true)
			case now := <-gc.C:
				if r.gens != nil {
					r.gens.gc(now)
				}
			}
		}
	}()

	backoff := 100 * time.Millisecond
	for {
		synced, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.st.setErr(err)
		r.mu.Lock()
		r.view.Connected, r.view.InSync = false, false
		r.mu.Unlock()
		r.log.Warn("mirror: session with the primary ended", "primary", r.cfg.Primary, "err", err)
		if synced {
			backoff = 100 * time.Millisecond
		}
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff)/2+1))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// session runs one connection; synced reports whether it got in sync.
func (r *replica) session(ctx context.Context) (synced bool, err error) {
	r.st.sessions.Add(1)
	var in, out atomic.Int64
	defer func() {
		r.st.wireIn.Add(in.Load())
		r.st.wireOut.Add(out.Load())
	}()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	raw, err := r.cfg.Dial(dctx, "tcp", r.cfg.Primary)
	cancel()
	if err != nil {
		return false, fmt.Errorf("dialing primary: %w", err)
	}
	tc := tls.Client(countingConn{Conn: raw, in: &in, out: &out}, r.cfg.Identity.clientConfig(r.cfg.PrimaryName))
	defer tc.Close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		r.st.authFailures.Add(1)
		return false, fmt.Errorf("TLS handshake with primary: %w", err)
	}
	fw := newFrameWriter(tc, writeTimeout)
	if err := fw.write(wire.Hello{Version: wire.Version, Name: r.cfg.Name}); err != nil {
		return false, err
	}
	if err := fw.flush(); err != nil {
		return false, err
	}
	rd := wire.NewReader(tc)
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := rd.Read()
	if err != nil {
		return false, fmt.Errorf("reading primary's hello: %w", err)
	}
	if h, ok := m.(wire.Hello); !ok || h.Version != wire.Version {
		return false, fmt.Errorf("primary answered %+v, not hello version %d", m, wire.Version)
	}
	r.log.Info("mirror: connected to primary", "primary", r.cfg.Primary)

	s := newSyncer(r, time.Now())
	outq := make(chan wire.Msg, 1024)
	s.out = outq
	r.mu.Lock()
	r.view.Connected, r.view.Since, r.view.SyncedAt = true, s.start, time.Time{}
	r.mu.Unlock()

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	werr := make(chan error, 1)
	s.done = sctx.Done()
	s.startCreator()
	go func() {
		err := r.writeLoop(sctx, fw, outq)
		scancel()  // unblock the syncer's sends
		tc.Close() // and the reader
		werr <- err
	}()
	go func() {
		<-sctx.Done()
		tc.Close()
	}()
	defer s.close()
	// One goroutine reads, decrypts, decodes and inflates; this one hashes
	// and writes files, so the two halves of the work overlap.
	msgs := make(chan wire.Msg, 64)
	rerr := make(chan error, 1)
	go func() {
		rerr <- r.readLoop(sctx, tc, rd, msgs, s.bufs)
		close(msgs)
	}()
	tick := time.NewTicker(maxReadyAge)
	defer tick.Stop()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				err := <-rerr
				scancel()
				if e := <-werr; e != nil && !errors.Is(e, net.ErrClosed) {
					err = e
				}
				return s.synced, fmt.Errorf("reading from primary: %w", err)
			}
			err := s.handle(m)
			if l, ok := m.(wire.Literal); ok {
				s.bufs.Put(&l.Data)
			}
			if err != nil {
				scancel()
				<-werr
				return s.synced, err
			}
		case <-tick.C:
		}
		if r.audit.Swap(false) && !s.inListing {
			s.reconcile(r.remote, s.lastFinal, false)
		}
		s.pump()
		s.settle()
		r.publish(s, in.Load(), out.Load())
	}
}

// readLoop reads frames into msgs until the connection fails. Literal
// data is copied out of the reader's buffer (inflated when it can be) into
// buffers from bufs, which the syncer gives back.
func (r *replica) readLoop(ctx context.Context, tc net.Conn, rd *wire.Reader, msgs chan<- wire.Msg, bufs *sync.Pool) error {
	var z wire.Inflater
	for {
		tc.SetReadDeadline(time.Now().Add(3 * r.cfg.Heartbeat))
		m, err := rd.Read()
		if err != nil {
			return err
		}
		if l, ok := m.(wire.Literal); ok {
			data := l.Data
			if l.Deflated {
				if d, err := z.Inflate(l.Data); err == nil {
					data, l.Deflated = d, false
				} // else the syncer meets the error itself
			}
			bp := bufs.Get().(*[]byte)
			l.Data = append((*bp)[:0], data...)
			m = l
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// writeLoop sends what the syncer queues; the heartbeat runs beside it.
func (r *replica) writeLoop(ctx context.Context, fw *frameWriter, out <-chan wire.Msg) error {
	done := make(chan struct{})
	defer close(done)
	go fw.heartbeat(r.cfg.Heartbeat, done)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-out:
			if err := fw.write(m); err != nil {
				return err
			}
			for more := true; more; {
				select {
				case m := <-out:
					if err := fw.write(m); err != nil {
						return err
					}
				default:
					more = false
				}
			}
			if err := fw.flush(); err != nil {
				return err
			}
		}
	}
}

// publish updates the status view from the syncer's state.
func (r *replica) publish(s *syncer, in, out int64) {
	now := time.Now()
	if now.Sub(s.published) < 50*time.Millisecond && !s.idle() {
		return
	}
	s.published = now
	lag, bytes := s.lag(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.view.InSync = s.inSync()
	r.view.Lag, r.view.LagBytes = lag, bytes
	r.view.AckedGen = s.acked
	r.view.WireIn, r.view.WireOut = in, out
	if s.synced && r.view.SyncedAt.IsZero() {
		r.view.SyncedAt = s.syncedAt
	}
}

func (r *replica) status() ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.view
}

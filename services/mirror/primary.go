package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/piimage/piimage/services/mirror/wire"
)

// maxBatchBytes bounds the encoded items of one Batch frame.
const maxBatchBytes = 512 << 10

// maxQueuedBatches is how many batches a slow replica may have waiting
// before it is dropped (it reconnects and gets a fresh listing).
const maxQueuedBatches = 4096

// maxRequests bounds the requests a replica may have outstanding.
const maxRequests = 4096

// primary serves its tree to replicas.
type primary struct {
	cfg  Config
	log  *slog.Logger
	ex   *excluder
	root *os.Root
	st   *counters

	mu      sync.Mutex
	index   map[string]wire.Item
	gen     uint64
	hist    []genMark // generations some replica has not acked
	peers   map[*peer]struct{}
	gone    map[string]ReplicaStatus // replicas not connected now, by name
	listen  net.Addr
	scanned bool
}

// genMark is when generation gen was published and how many file bytes
// it changed.
type genMark struct {
	gen   uint64
	at    time.Time
	bytes int64
}

func newPrimary(cfg Config, log *slog.Logger, st *counters) (*primary, error) {
	ex, err := newExcluder(cfg.Excludes)
	if err != nil {
		return nil, err
	}
	return &primary{cfg: cfg, log: log, ex: ex, st: st, peers: map[*peer]struct{}{}, gone: map[string]ReplicaStatus{}}, nil
}

// run lists the tree, watches it and serves replicas until ctx is done.
func (p *primary) run(ctx context.Context) error {
	if err := os.MkdirAll(p.cfg.Root, 0o755); err != nil {
		return fmt.Errorf("creating web root: %w", err)
	}
	root, err := os.OpenRoot(p.cfg.Root)
	if err != nil {
		return fmt.Errorf("opening web root: %w", err)
	}
	defer root.Close()
	p.root = root

	// Watch first, then list: a change made while listing is seen twice
	// rather than never.
	w, err := newWatcher(p.cfg.Root, p.ex, p.log)
	if err != nil {
		p.log.Warn("mirror: no change notifications, relying on the periodic scan", "err", err)
		w = nil
	}
	if w != nil {
		defer w.Close()
	}
	idx, err := scanTree(p.cfg.Root, "", p.ex, nil)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.index, p.gen, p.scanned = idx, 1, true
	p.mu.Unlock()
	p.log.Info("mirror: primary listed its tree", "root", p.cfg.Root, "entries", len(idx))

	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening for replicas: %w", err)
	}
	p.mu.Lock()
	p.listen = ln.Addr()
	p.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-sctx.Done()
		ln.Close()
		p.mu.Lock()
		for pc := range p.peers {
			pc.raw.Close()
		}
		p.mu.Unlock()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.accept(sctx, ln, &wg)
	}()
	return p.watchLoop(sctx, w)
}

// holdOpen bounds how long a file still being written is held back.
const holdOpen = 2 * time.Second

// watchLoop turns change notifications into batches (see batcher), and
// scans the whole tree every ScanInterval or when notifications were
// lost.
func (p *primary) watchLoop(ctx context.Context, w *watcher) error {
	var events <-chan []change
	var overflow <-chan struct{}
	if w != nil {
		events, overflow = w.Events(), w.Overflow()
	}
	scan := time.NewTicker(p.cfg.ScanInterval)
	defer scan.Stop()
	b := newBatcher(p.cfg.BatchDelay, p.cfg.MaxBatchDelay, holdOpen)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case cs := <-events:
			b.add(time.Now(), cs)
		case <-timer.C:
		case <-overflow:
			p.log.Warn("mirror: change notifications overflowed; scanning the whole tree")
			p.fullScan()
		case <-scan.C:
			p.fullScan()
		}
		paths, next := b.due(time.Now())
		if len(paths) > 0 {
			p.applyDirty(paths)
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
}

// applyDirty looks at changed paths (and their folders) and publishes
// what differs from the listing.
func (p *primary) applyDirty(changed []string) {
	dirty := map[string]bool{}
	for _, rel := range changed {
		dirty[rel] = true
		if dir := path.Dir(rel); dir != "." {
			dirty[dir] = true
		}
	}
	paths := make([]string, 0, len(dirty))
	for rel := range dirty {
		paths = append(paths, rel)
	}
	sort.Strings(paths)
	p.mu.Lock()
	defer p.mu.Unlock()
	var changes []wire.Item
	for _, rel := range paths {
		changes = p.refresh(rel, changes)
	}
	p.publishLocked(changes)
}

// refresh compares the entry rel on disk with the listing, updates the
// listing and appends the changes.
func (p *primary) refresh(rel string, changes []wire.Item) []wire.Item {
	old, had := p.index[rel]
	it, exists := p.lstat(rel)
	if !exists {
		if had {
			p.dropLocked(rel)
			changes = append(changes, wire.Item{Kind: wire.KindDelete, Path: rel})
		}
		return changes
	}
	if had && old == it {
		return changes
	}
	if had && old.Kind == wire.KindDir && it.Kind != wire.KindDir {
		p.dropLocked(rel)
	}
	p.index[rel] = it
	changes = append(changes, it)
	if it.Kind == wire.KindDir && (!had || old.Kind != wire.KindDir) {
		// A folder created or moved in: list what it holds.
		sub, err := scanTree(p.cfg.Root, rel, p.ex, nil)
		if err != nil {
			p.log.Warn("mirror: listing new folder", "path", rel, "err", err)
		}
		for _, c := range sortedItems(sub) {
			if prev, ok := p.index[c.Path]; !ok || prev != c {
				p.index[c.Path] = c
				changes = append(changes, c)
			}
		}
	}
	return changes
}

// lstat describes rel as it is on disk; exists is false when it is gone,
// excluded, not copied, or below something that is not a folder.
func (p *primary) lstat(rel string) (it wire.Item, exists bool) {
	if p.ex.excluded(rel, true) && p.ex.excluded(rel, false) {
		return it, false
	}
	if dir := path.Dir(rel); dir != "." {
		if d, ok := p.index[dir]; !ok || d.Kind != wire.KindDir {
			return it, false
		}
	}
	full := filepath.Join(p.cfg.Root, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if err != nil {
		return it, false
	}
	if p.ex.excluded(rel, fi.IsDir()) {
		return it, false
	}
	it, ok, err := itemOf(rel, fi, func(string) (string, error) { return os.Readlink(full) })
	return it, ok && err == nil
}

// dropLocked removes rel and everything below it from the listing.
func (p *primary) dropLocked(rel string) {
	delete(p.index, rel)
	for q := range p.index {
		if isUnder(q, rel) {
			delete(p.index, q)
		}
	}
}

// fullScan lists the whole tree and publishes the differences.
func (p *primary) fullScan() {
	idx, err := scanTree(p.cfg.Root, "", p.ex, nil)
	if err != nil {
		p.st.setErr(err)
		p.log.Warn("mirror: scanning", "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var changes []wire.Item
	var gone []string
	for rel := range p.index {
		if _, ok := idx[rel]; !ok {
			gone = append(gone, rel)
		}
	}
	sort.Strings(gone)
	for _, rel := range gone {
		changes = append(changes, wire.Item{Kind: wire.KindDelete, Path: rel})
	}
	for _, it := range sortedItems(idx) {
		if old, ok := p.index[it.Path]; !ok || old != it {
			changes = append(changes, it)
		}
	}
	p.index = idx
	if len(changes) > 0 {
		p.log.Info("mirror: the periodic scan found changes the notifications missed", "changes", len(changes))
	}
	p.publishLocked(changes)
}

// publishLocked sends changes to every replica as a new generation.
func (p *primary) publishLocked(changes []wire.Item) {
	if len(changes) == 0 {
		return
	}
	p.gen++
	var bytes int64
	for _, c := range changes {
		if c.Kind == wire.KindFile {
			bytes += int64(c.Size)
		}
	}
	if len(p.peers) > 0 {
		p.hist = append(p.hist, genMark{gen: p.gen, at: time.Now(), bytes: bytes})
	}
	frames := batchFrames(p.gen, 0, changes)
	for pc := range p.peers {
		pc.queueBatches(frames)
	}
	p.st.changes.Add(int64(len(changes)))
}

// batchFrames splits items into Batch frames of generation gen; the first
// carries flags, the last FlagFinal.
func batchFrames(gen, flags uint64, items []wire.Item) []wire.Batch {
	var out []wire.Batch
	start, size := 0, 0
	for i, it := range items {
		size += len(it.Path) + len(it.Target) + 24
		if size >= maxBatchBytes || i-start >= 4096 {
			out = append(out, wire.Batch{Gen: gen, Flags: flags, Items: items[start:i]})
			flags &^= wire.FlagReset
			start, size = i, len(it.Path)+len(it.Target)+24
		}
	}
	out = append(out, wire.Batch{Gen: gen, Flags: flags | wire.FlagFinal, Items: items[start:]})
	return out
}

// trimHistLocked forgets generations every replica has acked.
func (p *primary) trimHistLocked() {
	min := p.gen
	for pc := range p.peers {
		if a := pc.acked; a < min {
			min = a
		}
	}
	i := 0
	for i < len(p.hist) && p.hist[i].gen <= min {
		i++
	}
	p.hist = p.hist[i:]
}

func (p *primary) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("mirror: accepting", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.serve(ctx, c); err != nil && ctx.Err() == nil {
				p.log.Warn("mirror: replica session ended", "peer", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// serve runs one replica's session.
func (p *primary) serve(ctx context.Context, raw net.Conn) error {
	pc := &peer{p: p, raw: raw, addr: raw.RemoteAddr().String(), since: time.Now(), wake: make(chan struct{}, 1)}
	cc := countingConn{Conn: raw, in: &pc.in, out: &pc.out}
	tc := tls.Server(cc, p.cfg.Identity.serverConfig())
	defer tc.Close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		p.st.authFailures.Add(1)
		return fmt.Errorf("TLS handshake: %w", err)
	}
	cs := tc.ConnectionState()
	pc.name = certName(cs.PeerCertificates[0])
	pc.conn = tc
	r := wire.NewReader(tc)
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := r.Read()
	if err != nil {
		return fmt.Errorf("reading hello: %w", err)
	}
	h, ok := m.(wire.Hello)
	if !ok || h.Version != wire.Version {
		fw := newFrameWriter(tc, 5*time.Second)
		fw.write(wire.Error{Msg: fmt.Sprintf("expected hello version %d", wire.Version)})
		fw.flush()
		return fmt.Errorf("bad hello from %s: %+v", pc.name, m)
	}
	if h.Name != pc.name {
		p.log.Info("mirror: replica's hello differs from its certificate", "hello", h.Name, "cert", pc.name)
	}
	pc.fw = newFrameWriter(tc, writeTimeout)
	if err := pc.fw.write(wire.Hello{Version: wire.Version, Name: p.cfg.Name}); err != nil {
		return err
	}

	// Register and queue the listing under one lock: every later change
	// is in a later generation.
	p.mu.Lock()
	snap := sortedItems(p.index)
	pc.snapGen, pc.acked = p.gen, 0
	for _, it := range snap {
		if it.Kind == wire.KindFile {
			pc.snapBytes += int64(it.Size)
		}
	}
	pc.queueBatches(batchFrames(p.gen, wire.FlagReset, snap))
	p.peers[pc] = struct{}{}
	p.mu.Unlock()
	p.log.Info("mirror: replica connected", "replica", pc.name, "addr", pc.addr, "entries", len(snap))
	var rerr error
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		gone := p.replicaLocked(pc, time.Now())
		gone.Connected, gone.InSync, gone.Lag, gone.LagBytes = false, false, 0, 0
		gone.Until = time.Now()
		if rerr != nil {
			gone.LastError = rerr.Error()
		}
		p.gone[pc.name] = gone
		delete(p.peers, pc)
		p.trimHistLocked()
	}()

	werr := make(chan error, 1)
	go func() { werr <- pc.writeLoop(ctx) }()
	rerr = pc.readLoop(r)
	pc.close()
	tc.Close()
	if e := <-werr; rerr == nil || errors.Is(rerr, net.ErrClosed) {
		rerr = e
	}
	return rerr
}

// readLoop takes requests, acks and pings from the replica.
func (pc *peer) readLoop(r *wire.Reader) error {
	p := pc.p
	for {
		pc.conn.SetReadDeadline(time.Now().Add(3 * p.cfg.Heartbeat))
		m, err := r.Read()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("reading from replica %s: %w", pc.name, err)
		}
		switch m := m.(type) {
		case wire.Request:
			pc.mu.Lock()
			if len(pc.reqs) >= maxRequests {
				pc.mu.Unlock()
				return fmt.Errorf("replica %s has more than %d requests outstanding", pc.name, maxRequests)
			}
			pc.reqs = append(pc.reqs, m)
			pc.mu.Unlock()
			pc.poke()
		case wire.Ack:
			p.mu.Lock()
			if m.Gen > p.gen {
				p.mu.Unlock()
				return fmt.Errorf("replica %s acked generation %d of %d", pc.name, m.Gen, p.gen)
			}
			if m.Gen > pc.acked {
				pc.acked = m.Gen
				if m.Gen >= pc.snapGen && pc.syncedAt.IsZero() {
					pc.syncedAt = time.Now()
					p.log.Info("mirror: replica in sync", "replica", pc.name, "after", pc.syncedAt.Sub(pc.since).Round(time.Millisecond))
				}
			}
			p.trimHistLocked()
			p.mu.Unlock()
		case wire.Ping:
		case wire.Error:
			return fmt.Errorf("replica %s: %s", pc.name, m.Msg)
		default:
			return fmt.Errorf("replica %s sent an unexpected %T", pc.name, m)
		}
	}
}

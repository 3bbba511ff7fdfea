package mirror

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/piimage/piimage/services/mirror/delta"
	"github.com/piimage/piimage/services/mirror/wire"
)

// maxRetries bounds how often a file whose checksum fails is fetched
// again before the replica waits for the next change or scan.
const maxRetries = 3

// syncer is a replica session's state: it applies batches, fetches files
// that differ through a window of requests, and acks generations once
// applied. It runs in the session's reading goroutine only.
type syncer struct {
	r       *replica
	l       *local
	out     chan<- wire.Msg
	done    <-chan struct{} // closed when the session ends
	creates chan *precreate // to the goroutine creating files ahead
	start   time.Time

	// The listing being received (FlagReset .. FlagFinal).
	inListing  bool
	listing    map[string]wire.Item
	listingGen uint64

	lastFinal uint64
	openGen   bool      // a generation's batches have begun and not ended
	retryAt   time.Time // of a whole-tree switch that failed
	finals    []uint64  // final generations not yet acked, ascending
	acked     uint64
	genSeen   map[uint64]time.Time
	pending   map[uint64]int // outstanding paths per generation

	want     []string
	wantGen  map[string]uint64
	inflight []*xfer
	inPath   map[string]*xfer
	nextID   uint64
	retries  map[string]int
	noBasis  map[string]bool
	touched  map[string]bool
	refusals int

	// Files deleted while changes are applied wait in the stash: a file
	// that reappears under another name (a rename, a moved folder) uses
	// its old content as the basis of its transfer.
	stash     map[stashKey]string
	stashN    int
	idleSince time.Time // idle with a stash since

	// Files received whole, waiting to be renamed into place together
	// after one syncfs.
	ready      []*xfer
	readyMap   map[string]*xfer
	readyBytes int64
	readyAt    time.Time

	synced    bool
	syncedAt  time.Time
	published time.Time
	inflater  wire.Inflater
	bufs      *sync.Pool // of *[]byte, for Literal data
}

// xfer is one requested file.
type xfer struct {
	id        uint64
	path      string
	gen       uint64
	basis     *os.File
	basisSize int64
	bs        int
	partial   bool

	dirty    bool // the remote entry changed while in flight
	dirtyGen uint64

	pre     *precreate // its temporary file, created ahead
	head    *wire.FileHead
	in      *incoming
	patch   *delta.Patcher
	discard bool
	failed  error
	readied bool
}

func newSyncer(r *replica, now time.Time) *syncer {
	return &syncer{r: r, l: r.loc, start: now, genSeen: map[uint64]time.Time{}, pending: map[uint64]int{},
		wantGen: map[string]uint64{}, inPath: map[string]*xfer{}, retries: map[string]int{},
		noBasis: map[string]bool{}, touched: map[string]bool{}, readyMap: map[string]*xfer{},
		bufs: &sync.Pool{New: func() any { b := make([]byte, 0, 128<<10); return &b }}}
}

// close ends the session: a transfer cut off is kept as a partial file
// when large enough.
func (s *syncer) close() {
	s.commitReady()
	defer s.dropStash()
	for _, x := range s.inflight {
		if x.pre != nil {
			x.pre.drop()
		}
		if x.in != nil {
			x.in.abort(keepPartial)
		}
		if x.basis != nil {
			x.basis.Close()
		}
	}
	s.inflight = nil
	if s.creates != nil {
		close(s.creates)
	}
}

func (s *syncer) handle(m wire.Msg) error {
	switch m := m.(type) {
	case wire.Batch:
		return s.onBatch(m)
	case wire.FileHead:
		return s.onHead(m)
	case wire.Literal:
		x, err := s.current(m.ID)
		if err != nil || x.discard || x.failed != nil {
			return err
		}
		data := m.Data
		if m.Deflated {
			if data, err = s.inflater.Inflate(m.Data); err != nil {
				x.failed = err
				return nil
			}
		}
		x.failed = x.patch.Literal(data)
	case wire.Copy:
		x, err := s.current(m.ID)
		if err != nil || x.discard || x.failed != nil {
			return err
		}
		x.failed = x.patch.Copy(m.Index, m.Count)
	case wire.FileEnd:
		return s.onEnd(m)
	case wire.Ping:
	case wire.Error:
		return fmt.Errorf("primary: %s", m.Msg)
	default:
		return fmt.Errorf("primary sent an unexpected %T", m)
	}
	return nil
}

// refuse counts and logs an unsafe entry from the primary.
func (s *syncer) refuse(err error) {
	s.r.st.refused.Add(1)
	s.refusals++
	if s.refusals <= 10 {
		s.r.log.Warn("mirror: refused an entry from the primary", "err", err)
	}
}

// checkItem validates an entry received: a safe path, a known kind, and a
// folder above it (in tree, or the root).
func (s *syncer) checkItem(it wire.Item, tree map[string]wire.Item) error {
	if err := checkPath(it.Path); err != nil {
		return err
	}
	if it.Kind == wire.KindDelete {
		return nil
	}
	if p := parentOf(it.Path); p != "" {
		if d, ok := tree[p]; !ok || d.Kind != wire.KindDir {
			return fmt.Errorf("%w: %q is not inside a listed folder", ErrUnsafePath, it.Path)
		}
	}
	return nil
}

func (s *syncer) onBatch(b wire.Batch) error {
	if b.Gen < s.lastFinal {
		return fmt.Errorf("primary went back from generation %d to %d", s.lastFinal, b.Gen)
	}
	if _, ok := s.genSeen[b.Gen]; !ok {
		s.genSeen[b.Gen] = time.Now()
	}
	if b.Flags&wire.FlagReset != 0 {
		s.inListing, s.listing, s.listingGen = true, map[string]wire.Item{}, b.Gen
	}
	if s.inListing {
		if b.Gen != s.listingGen {
			return fmt.Errorf("listing of generation %d interrupted by %d", s.listingGen, b.Gen)
		}
		for _, it := range b.Items {
			if it.Kind == wire.KindDelete || s.r.ex.excluded(it.Path, it.Kind == wire.KindDir) {
				continue
			}
			if err := s.checkItem(it, s.listing); err != nil {
				s.refuse(err)
				continue
			}
			s.listing[it.Path] = it
		}
		if b.Flags&wire.FlagFinal != 0 {
			s.inListing = false
			s.r.remote = s.listing
			s.listing = nil
			s.reconcile(s.r.remote, b.Gen, true)
			s.final(b.Gen)
		}
		return nil
	}
	s.openGen = b.Flags&wire.FlagFinal == 0
	for _, it := range b.Items {
		if s.r.ex.excluded(it.Path, it.Kind == wire.KindDir) {
			continue
		}
		if err := s.checkItem(it, s.r.remote); err != nil {
			s.refuse(err)
			continue
		}
		s.apply(it, b.Gen)
	}
	if b.Flags&wire.FlagFinal != 0 {
		s.final(b.Gen)
	}
	return nil
}

func (s *syncer) final(gen uint64) {
	s.lastFinal = gen
	s.finals = append(s.finals, gen)
}

// apply applies one change of a batch.
func (s *syncer) apply(it wire.Item, gen uint64) {
	if it.Kind != wire.KindFile {
		s.commitReady() // keep the order of a file's arrival and its removal
		s.settleCreates()
	}
	remote := s.r.remote
	old, had := remote[it.Path]
	if had && old.Kind == wire.KindDir && it.Kind != wire.KindDir {
		for p := range remote {
			if isUnder(p, it.Path) && p != it.Path {
				delete(remote, p)
				s.cancel(p)
			}
		}
	}
	s.r.st.changes.Add(1)
	s.touched[parentOf(it.Path)] = true
	var err error
	switch it.Kind {
	case wire.KindDelete:
		delete(remote, it.Path)
		s.cancel(it.Path)
		var removed bool
		if removed, err = s.discard(it.Path); removed {
			s.r.st.deleted.Add(1)
		}
	case wire.KindDir:
		remote[it.Path] = it
		s.touched[it.Path] = true
		err = s.l.ensureDir(it, remote)
	case wire.KindSymlink:
		remote[it.Path] = it
		s.cancel(it.Path)
		err = s.l.ensureSymlink(it, remote)
	case wire.KindFile:
		remote[it.Path] = it
		s.needFile(it, gen)
	}
	s.noteErr(err)
}

func (s *syncer) noteErr(err error) {
	if err == nil {
		return
	}
	if errors.Is(err, ErrUnsafePath) {
		s.refuse(err)
		return
	}
	s.r.st.setErr(err)
	s.r.log.Warn("mirror: applying a change", "err", err)
}

// needFile fetches it unless the local copy matches (a mode change alone
// is applied in place).
func (s *syncer) needFile(it wire.Item, gen uint64) {
	if x := s.inPath[it.Path]; x != nil {
		if x.dirty {
			s.pending[x.dirtyGen]--
		}
		x.dirty, x.dirtyGen = true, gen
		s.pending[gen]++
		return
	}
	if loc, ok := s.localItem(it.Path); ok && loc.Kind == wire.KindFile {
		if sameItem(loc, it) {
			return
		}
		// Under whole-tree switches the file may be linked into the
		// published generation: fetch it again rather than change it.
		if loc.Size == it.Size && loc.MtimeNs == it.MtimeNs && s.r.gens == nil {
			if s.readyMap[it.Path] != nil {
				s.commitReady()
			}
			s.noteErr(s.l.root.Chmod(it.Path, fileMode(it.Mode)))
			return
		}
	}
	s.enqueue(it.Path, gen)
}

func (s *syncer) enqueue(p string, gen uint64) {
	if g, ok := s.wantGen[p]; ok {
		s.pending[g]--
	} else {
		s.want = append(s.want, p)
	}
	s.wantGen[p] = gen
	s.pending[gen]++
}

// cancel forgets a wanted path; one in flight is re-examined on arrival.
func (s *syncer) cancel(p string) {
	if g, ok := s.wantGen[p]; ok {
		s.pending[g]--
		delete(s.wantGen, p)
	}
	if x := s.inPath[p]; x != nil && !x.dirty {
		x.dirty, x.dirtyGen = true, x.gen
		s.pending[x.gen]++
	}
}

// reconcile compares the local tree with tree: deletes what tree lacks,
// creates folders and links, and queues files that differ. fresh is true
// for a new listing, when leftovers of earlier sessions are cleaned.
func (s *syncer) reconcile(tree map[string]wire.Item, gen uint64, fresh bool) {
	s.commitReady()
	s.settleCreates()
	var own []string
	loc, err := scanTree(s.l.dir, "", s.r.ex, func(rel string) { own = append(own, rel) })
	if err != nil {
		s.noteErr(err)
		return
	}
	if fresh {
		s.l.root.RemoveAll(stashDir) // left by an earlier run
	}
	var gone []string
	for p := range loc {
		if _, ok := tree[p]; !ok {
			gone = append(gone, p)
		}
	}
	if len(tree) == 0 && len(gone) > 0 {
		// An empty web root on the primary is more likely a data
		// partition that did not mount than a site deleted on purpose.
		err := fmt.Errorf("the primary's web root is empty; keeping the %d entries here (delete them by hand if that is meant)", len(gone))
		s.r.st.setErr(err)
		s.r.log.Warn("mirror: " + err.Error())
		gone = nil
	}
	sort.Strings(gone)
	last := ""
	for _, p := range gone {
		if last != "" && isUnder(p, last) {
			continue
		}
		last = p
		s.cancel(p)
		if removed, err := s.discard(p); removed {
			s.r.st.deleted.Add(1)
			s.touched[parentOf(p)] = true
		} else {
			s.noteErr(err)
		}
	}
	for _, it := range sortedItems(tree) {
		l, has := loc[it.Path]
		switch it.Kind {
		case wire.KindDir:
			if !has || l.Kind != wire.KindDir || l.Mode != it.Mode {
				s.noteErr(s.l.ensureDir(it, tree))
			}
			if !has || l.MtimeNs != it.MtimeNs {
				s.touched[it.Path] = true
			}
		case wire.KindSymlink:
			if !has || !sameItem(l, it) {
				s.noteErr(s.l.ensureSymlink(it, tree))
			}
		case wire.KindFile:
			if !has || !sameItem(l, it) {
				s.needFile(it, gen)
			}
		}
	}
	if fresh {
		for _, p := range own {
			if p == stashDir {
				continue
			}
			if base, ok := partialBase(p); ok {
				if _, wanted := s.wantGen[base]; wanted {
					continue
				}
			}
			s.l.root.RemoveAll(p)
		}
	}
}

// idle reports whether everything received has been applied.
func (s *syncer) idle() bool {
	return !s.inListing && len(s.inflight) == 0 && len(s.wantGen) == 0 && len(s.ready) == 0
}

// inSync reports whether the replica is idle and has acked the last
// generation it heard of.
func (s *syncer) inSync() bool { return s.idle() && s.acked == s.lastFinal && s.lastFinal > 0 }

// settle acks the generations fully applied and, once idle, restores
// folder mtimes.
func (s *syncer) settle() {
	if s.inListing {
		return
	}
	if n := len(s.ready); n > 0 && (len(s.inflight) == 0 || n >= maxReadyFiles ||
		s.readyBytes >= maxReadyBytes || time.Since(s.readyAt) >= maxReadyAge) {
		s.commitReady()
	}
	minPending := uint64(0)
	for g, n := range s.pending {
		if n <= 0 {
			delete(s.pending, g)
			continue
		}
		if minPending == 0 || g < minPending {
			minPending = g
		}
	}
	if s.idle() && len(s.touched) > 0 {
		for d := range s.touched {
			if it, ok := s.r.remote[d]; ok && it.Kind == wire.KindDir {
				s.l.setDirTime(d, it.MtimeNs)
			}
		}
		s.touched = map[string]bool{}
	}
	target := s.acked
	i := 0
	for i < len(s.finals) && (minPending == 0 || s.finals[i] < minPending) {
		target = s.finals[i]
		i++
	}
	if target > s.acked && s.r.gens != nil && !s.switchTree() {
		target, i = s.acked, 0 // ack once the tree is switched
	}
	s.finals = s.finals[i:]
	if target > s.acked {
		s.acked = target
		for g := range s.genSeen {
			if g <= target {
				delete(s.genSeen, g)
			}
		}
		s.send(wire.Ack{Gen: target})
	}
	// The stash outlives the batch: the two halves of a rename may come
	// in two batches.
	switch {
	case !s.idle() || s.stashN == 0:
		s.idleSince = time.Time{}
	case s.idleSince.IsZero():
		s.idleSince = time.Now()
	case time.Since(s.idleSince) >= stashGrace:
		s.dropStash()
		s.idleSince = time.Time{}
	}
	if !s.synced && s.inSync() {
		s.synced, s.syncedAt = true, time.Now()
		s.r.log.Info("mirror: replica in sync", "after", s.syncedAt.Sub(s.start).Round(time.Millisecond), "entries", len(s.r.remote))
	}
}

// switchTree publishes the working copy as the new generation of the
// tree once everything received is applied and no generation is half
// received; it reports whether the tree is switched.
func (s *syncer) switchTree() bool {
	if !s.idle() || s.openGen || time.Now().Before(s.retryAt) {
		return false
	}
	var sync func() error
	if s.l.fsync {
		sync = func() error { return syncFS(s.r.rootDir) }
	}
	if err := s.r.gens.publish(sync); err != nil {
		s.retryAt = time.Now().Add(time.Second)
		s.noteErr(fmt.Errorf("switching the whole tree: %w", err))
		return false
	}
	s.r.st.switches.Add(1)
	return true
}

// lag reports how long the oldest change not applied has waited and the
// size of the files still to fetch.
func (s *syncer) lag(now time.Time) (time.Duration, int64) {
	if s.inSync() {
		return 0, 0
	}
	var bytes int64
	for p := range s.wantGen {
		bytes += int64(s.r.remote[p].Size)
	}
	for _, x := range s.inflight {
		bytes += int64(s.r.remote[x.path].Size)
	}
	if !s.synced {
		return now.Sub(s.start), bytes
	}
	oldest := now
	for g, at := range s.genSeen {
		if g > s.acked && at.Before(oldest) {
			oldest = at
		}
	}
	return now.Sub(oldest), bytes
}

// partialBase returns the path a partial transfer belongs to.
func partialBase(rel string) (string, bool) {
	dir, base := "", rel
	if i := lastSlash(rel); i >= 0 {
		dir, base = rel[:i+1], rel[i+1:]
	}
	const suffix = ".partial"
	if len(base) <= len(tempPrefix)+len(suffix) || base[len(base)-len(suffix):] != suffix {
		return "", false
	}
	return dir + base[len(tempPrefix):len(base)-len(suffix)], true
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

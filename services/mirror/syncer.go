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
	r     *replica
	l     *local
	out   chan<- wire.Msg
	done  <-chan struct{} // closed when the session ends
	start time.Time

	// The listing being received (FlagReset .. FlagFinal).
	inListing  bool
	listing    map[string]wire.Item
	listingGen uint64

	lastFinal uint64
	finals    []uint64 // final generations not yet acked, ascending
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
	stash  map[stashKey]string
	stashN int

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
		if x.in != nil {
			x.in.abort(keepPartial)
		}
		if x.basis != nil {
			x.basis.Close()
		}
	}
	s.inflight = nil
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
		if loc.Size == it.Size && loc.MtimeNs == it.MtimeNs {
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

// pump sends requests while the window has room.
func (s *syncer) pump() {
	for len(s.inflight) < s.r.cfg.Window && len(s.want) > 0 {
		p := s.want[0]
		s.want = s.want[1:]
		gen, ok := s.wantGen[p]
		if !ok {
			continue // cancelled
		}
		delete(s.wantGen, p)
		it, ok := s.r.remote[p]
		if ok && it.Kind == wire.KindFile {
			if loc, has := s.localItem(p); has && sameItem(loc, it) {
				ok = false
			}
		}
		if !ok || it.Kind != wire.KindFile {
			s.pending[gen]--
			continue
		}
		s.request(p, gen)
	}
}

// request asks for p, offering the local copy (or a partial transfer) as
// the basis.
func (s *syncer) request(p string, gen uint64) {
	s.nextID++
	x := &xfer{id: s.nextID, path: p, gen: gen}
	req := wire.Request{ID: x.id, Path: p}
	if !s.noBasis[p] {
		f, size, ok := s.l.openRegular(p)
		pf, psize, pok := s.l.openRegular(partialName(p))
		if pok && (!ok || psize > size) {
			if ok {
				f.Close()
			}
			f, size, ok, x.partial = pf, psize, true, true
		} else if pok {
			pf.Close()
		}
		if !ok {
			if it, listed := s.r.remote[p]; listed {
				if name, stashed := s.stash[stashKey{it.Size, it.MtimeNs}]; stashed {
					f, size, ok = s.l.openRegular(name) // a rename: the old name's content
				}
			}
		}
		if ok && size > 0 {
			bs := delta.BlockSize(size)
			blocks, err := delta.Sign(f, bs)
			if err == nil {
				x.basis, x.basisSize, x.bs = f, size, bs
				req.BlockSize, req.Blocks = uint64(bs), blocks
			} else {
				f.Close()
			}
		} else if ok {
			f.Close()
		}
	}
	s.inflight = append(s.inflight, x)
	s.inPath[p] = x
	s.send(req)
}

// stashDir holds deleted files until the replica is idle again.
const stashDir = tempPrefix + "stash"

// stashKey finds a stashed file by what a renamed file keeps.
type stashKey struct {
	size    uint64
	mtimeNs int64
}

// discard deletes rel, moving the regular files it holds to the stash.
func (s *syncer) discard(rel string) (bool, error) {
	fi, err := s.l.root.Lstat(rel)
	if err != nil {
		return false, nil
	}
	switch {
	case fi.Mode().IsRegular():
		if s.stashFile(rel, uint64(fi.Size()), fi.ModTime().UnixNano()) {
			return true, nil
		}
	case fi.IsDir():
		if files, err := scanTree(s.l.dir, rel, nil, nil); err == nil {
			for _, it := range files {
				if it.Kind == wire.KindFile && s.stashN < maxStash {
					s.stashFile(it.Path, it.Size, it.MtimeNs)
				}
			}
		}
	}
	return s.l.remove(rel)
}

// maxStash bounds the files stashed between two idle moments.
const maxStash = 100000

func (s *syncer) stashFile(rel string, size uint64, mtimeNs int64) bool {
	if s.stashN == 0 {
		s.l.root.RemoveAll(stashDir)
		if err := s.l.root.Mkdir(stashDir, 0o700); err != nil {
			return false
		}
		s.stash = map[stashKey]string{}
	}
	name := fmt.Sprintf("%s/%d", stashDir, s.stashN)
	if err := s.l.root.Rename(rel, name); err != nil {
		return false
	}
	s.stashN++
	s.stash[stashKey{size, mtimeNs}] = name
	return true
}

func (s *syncer) dropStash() {
	if s.stashN > 0 {
		s.l.root.RemoveAll(stashDir)
		s.stash, s.stashN = nil, 0
	}
}

// send queues m for the writer, unless the session is over.
func (s *syncer) send(m wire.Msg) {
	select {
	case s.out <- m:
	case <-s.done:
	}
}

// current returns the transfer a data frame belongs to.
func (s *syncer) current(id uint64) (*xfer, error) {
	if len(s.inflight) == 0 || s.inflight[0].id != id || s.inflight[0].head == nil {
		return nil, fmt.Errorf("primary sent data of request %d out of order", id)
	}
	return s.inflight[0], nil
}

func (s *syncer) onHead(h wire.FileHead) error {
	if len(s.inflight) == 0 || s.inflight[0].id != h.ID || s.inflight[0].head != nil {
		return fmt.Errorf("primary answered request %d out of order", h.ID)
	}
	x := s.inflight[0]
	x.head = &h
	if h.Gone {
		s.finish(x)
		return nil
	}
	if err := s.l.ensureParents(x.path, s.r.remote); err != nil {
		x.discard = true
		s.noteErr(err)
		return nil
	}
	in, err := s.l.create(x.path)
	if err != nil {
		x.discard = true
		s.noteErr(err)
		return nil
	}
	x.in = in
	x.patch = delta.NewPatcher(in, x.basis, x.basisSize, x.bs, int64(h.Size))
	return nil
}

func (s *syncer) onEnd(e wire.FileEnd) error {
	x, err := s.current(e.ID)
	if err != nil {
		return err
	}
	if x.head.Gone {
		return fmt.Errorf("primary sent the end of request %d it said was gone", e.ID)
	}
	switch {
	case x.discard:
	case x.failed == nil && x.patch.Size() == int64(x.head.Size) && x.patch.Sum() == e.Sum:
		if err := x.in.finish(x.head.Mode, x.head.MtimeNs); err != nil {
			s.noteErr(err)
			break
		}
		x.readied = true
		if len(s.ready) == 0 {
			s.readyAt = time.Now()
		}
		s.ready = append(s.ready, x)
		s.readyMap[x.path] = x
		s.readyBytes += int64(x.head.Size)
	default:
		x.in.abort(0)
		s.r.st.corrupt.Add(1)
		if x.failed != nil && !errors.Is(x.failed, delta.ErrBadCopy) && !errors.Is(x.failed, delta.ErrTooLarge) && !errors.Is(x.failed, wire.ErrMalformed) {
			s.noteErr(x.failed)
		}
		s.retries[x.path]++
		if x.basis != nil {
			s.noBasis[x.path] = true
			if x.partial {
				s.l.root.Remove(partialName(x.path))
			}
		}
		if s.retries[x.path] <= maxRetries {
			if !x.dirty {
				x.dirty, x.dirtyGen = true, x.gen
				s.pending[x.gen]++
			}
		} else {
			s.r.log.Warn("mirror: giving up on a file whose checksum keeps failing", "path", x.path)
		}
	}
	s.finish(x)
	return nil
}

// finish retires the transfer at the head of the window.
func (s *syncer) finish(x *xfer) {
	s.inflight = s.inflight[1:]
	delete(s.inPath, x.path)
	if x.basis != nil {
		x.basis.Close()
	}
	if !x.readied {
		s.pending[x.gen]-- // a file received stays pending until renamed
	}
	s.touched[parentOf(x.path)] = true
	if x.dirty {
		s.pending[x.dirtyGen]--
		if it, ok := s.r.remote[x.path]; ok && it.Kind == wire.KindFile {
			s.needFile(it, x.dirtyGen)
		} else if !ok {
			if removed, _ := s.l.remove(x.path); removed {
				s.r.st.deleted.Add(1)
			}
		}
	}
}

func (s *syncer) idle() bool {
	return !s.inListing && len(s.inflight) == 0 && len(s.wantGen) == 0 && len(s.ready) == 0
}

// localItem describes the local copy of rel, counting a file received
// but not renamed yet.
func (s *syncer) localItem(rel string) (wire.Item, bool) {
	if x := s.readyMap[rel]; x != nil {
		h := x.head
		return wire.Item{Kind: wire.KindFile, Path: rel, Mode: h.Mode, MtimeNs: h.MtimeNs, Size: h.Size}, true
	}
	return s.l.lstat(rel)
}

// Group commits: files received are renamed into place together, after
// one syncfs, when the window drains or the group grows large or old.
const (
	maxReadyFiles = 128
	maxReadyBytes = 32 << 20
	maxReadyAge   = 100 * time.Millisecond
)

// commitReady makes the files received visible: one syncfs (when fsync is
// on) and a rename each.
func (s *syncer) commitReady() {
	if len(s.ready) == 0 {
		return
	}
	if s.l.fsync && haveSyncfs && s.r.rootDir != nil {
		if err := syncFS(s.r.rootDir); err != nil {
			s.noteErr(fmt.Errorf("syncing the web root: %w", err))
		}
	}
	for _, x := range s.ready {
		if err := x.in.commit(); err != nil {
			s.noteErr(err)
		} else {
			s.r.st.filesReceived.Add(1)
			if x.partial {
				x.in.dr.Remove(partialName(x.in.base))
			}
			delete(s.retries, x.path)
			delete(s.noBasis, x.path)
		}
		s.pending[x.gen]--
		s.touched[parentOf(x.path)] = true
		delete(s.readyMap, x.path)
	}
	s.ready, s.readyBytes = s.ready[:0], 0
}

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
	target := s.acked
	i := 0
	for i < len(s.finals) && (minPending == 0 || s.finals[i] < minPending) {
		target = s.finals[i]
		i++
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
	if s.idle() && s.stashN > 0 {
		s.dropStash()
	}
	if s.idle() && len(s.touched) > 0 {
		for d := range s.touched {
			if it, ok := s.r.remote[d]; ok && it.Kind == wire.KindDir {
				s.l.setDirTime(d, it.MtimeNs)
			}
		}
		s.touched = map[string]bool{}
	}
	if !s.synced && s.inSync() {
		s.synced, s.syncedAt = true, time.Now()
		s.r.log.Info("mirror: replica in sync", "after", s.syncedAt.Sub(s.start).Round(time.Millisecond), "entries", len(s.r.remote))
	}
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

package mirror

// Fetching files: the window of requests, the answers' frames, and the
// group commit that renames files received into place.

import (
	"errors"
	"fmt"
	"time"

	"github.com/piimage/piimage/services/mirror/delta"
	"github.com/piimage/piimage/services/mirror/wire"
)

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
	if pc, err := s.l.prepare(p, s.r.remote); err == nil && s.creates != nil {
		x.pre = pc
		s.creates <- pc
	}
	s.inflight = append(s.inflight, x)
	s.inPath[p] = x
	s.send(req)
}

// startCreator runs the goroutine that creates temporary files ahead.
func (s *syncer) startCreator() {
	s.creates = make(chan *precreate, s.r.cfg.Window+1)
	go func() {
		for pc := range s.creates {
			pc.open()
		}
	}()
}

// settleCreates waits for the files being created ahead: before a folder
// is removed or replaced, nothing may be created in it.
func (s *syncer) settleCreates() {
	for _, x := range s.inflight {
		if x.pre != nil {
			<-x.pre.done
		}
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
	pc := x.pre
	x.pre = nil
	if pc != nil && !s.l.current(pc) {
		pc.drop() // its folder went away since
		pc = nil
	}
	var err error
	if pc == nil {
		pc, err = s.l.prepare(x.path, s.r.remote)
		if err == nil {
			pc.open()
		}
	}
	var in *incoming
	if err == nil {
		in, err = s.l.receive(x.path, pc)
	}
	if err != nil {
		x.discard = true
		s.noteErr(err)
		if !errors.Is(err, ErrUnsafePath) && s.retries[x.path] < maxRetries {
			s.retries[x.path]++
			s.redo(x)
		}
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
			s.redo(x)
		} else {
			s.r.log.Warn("mirror: giving up on a file whose checksum keeps failing", "path", x.path)
		}
	}
	s.finish(x)
	return nil
}

// redo makes x fetched again once it is finished.
func (s *syncer) redo(x *xfer) {
	if !x.dirty {
		x.dirty, x.dirtyGen = true, x.gen
		s.pending[x.gen]++
	}
}

// finish retires the transfer at the head of the window.
func (s *syncer) finish(x *xfer) {
	if x.pre != nil {
		x.pre.drop()
		x.pre = nil
	}
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
			if x.readied {
				s.unready(x) // deleted on the primary while it was on its way
			}
			if removed, _ := s.l.remove(x.path); removed {
				s.r.st.deleted.Add(1)
			}
		}
	}
}

// unready drops a file received but not renamed into place yet.
func (s *syncer) unready(x *xfer) {
	for i, r := range s.ready {
		if r == x {
			s.ready = append(s.ready[:i], s.ready[i+1:]...)
			s.readyBytes -= int64(x.head.Size)
			break
		}
	}
	delete(s.readyMap, x.path)
	x.in.abort(0)
	x.readied = false
	s.pending[x.gen]--
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
	s.settleCreates() // a rename may replace a folder
	if s.l.fsync && haveSyncfs && s.r.rootDir != nil {
		if err := syncFS(s.r.rootDir); err != nil {
			s.noteErr(fmt.Errorf("syncing the web root: %w", err))
		}
	}
	for _, x := range s.ready {
		if err := x.in.commit(); err != nil {
			s.noteErr(err)
			if it, ok := s.r.remote[x.path]; ok && it.Kind == wire.KindFile && s.retries[x.path] < maxRetries {
				s.retries[x.path]++
				s.pending[x.gen]++ // moved to the retry by needFile
				delete(s.readyMap, x.path)
				s.needFile(it, x.gen)
				s.pending[x.gen]--
			}
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

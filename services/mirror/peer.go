package mirror

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/piimage/piimage/services/mirror/delta"
	"github.com/piimage/piimage/services/mirror/wire"
)

// peer is a replica connected to the primary.
type peer struct {
	p     *primary
	name  string
	addr  string
	since time.Time
	conn  net.Conn // the TLS connection
	raw   net.Conn // the TCP connection under it: closing it never blocks
	fw    *frameWriter
	in    atomic.Int64
	out   atomic.Int64

	// Guarded by p.mu.
	acked     uint64
	snapGen   uint64
	snapBytes int64
	syncedAt  time.Time

	mu      sync.Mutex
	batches []wire.Batch
	reqs    []wire.Request
	closed  bool
	wake    chan struct{}

	z     wire.Deflater
	dbufs delta.Buffers
}

func certName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

func (pc *peer) poke() {
	select {
	case pc.wake <- struct{}{}:
	default:
	}
}

func (pc *peer) close() {
	pc.mu.Lock()
	pc.closed = true
	pc.mu.Unlock()
	pc.poke()
}

// queueBatches queues frames for the writer; a replica that lets too many
// pile up is dropped.
func (pc *peer) queueBatches(bs []wire.Batch) {
	pc.mu.Lock()
	if len(pc.batches) > maxQueuedBatches {
		pc.mu.Unlock()
		pc.p.log.Warn("mirror: replica too slow; dropping it", "replica", pc.name)
		pc.raw.Close()
		return
	}
	pc.batches = append(pc.batches, bs...)
	pc.mu.Unlock()
	pc.poke()
}

// writeLoop sends batches (first) and answers requests, in order. The
// heartbeat runs beside it (frameWriter.heartbeat).
func (pc *peer) writeLoop(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go pc.fw.heartbeat(pc.p.cfg.Heartbeat, done)
	for {
		pc.mu.Lock()
		closed := pc.closed
		batches := pc.batches
		pc.batches = nil
		var req *wire.Request
		if len(batches) == 0 && len(pc.reqs) > 0 {
			req = &pc.reqs[0]
			pc.reqs = pc.reqs[1:]
		}
		pc.mu.Unlock()
		if closed {
			return nil
		}
		for _, b := range batches {
			if err := pc.fw.write(b); err != nil {
				return err
			}
		}
		if req != nil {
			if err := pc.answer(*req); err != nil {
				return err
			}
		}
		if len(batches) > 0 || req != nil {
			continue
		}
		if err := pc.fw.flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-pc.wake:
		}
	}
}

// answer sends the content of one requested file as a delta against the
// replica's basis.
func (pc *peer) answer(req wire.Request) error {
	p := pc.p
	gone := func() error { return pc.fw.write(wire.FileHead{ID: req.ID, Gone: true}) }
	p.mu.Lock()
	it, ok := p.index[req.Path]
	p.mu.Unlock()
	if !ok || it.Kind != wire.KindFile {
		return gone() // only listed files are served, whatever was asked
	}
	f, err := p.root.OpenFile(req.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return gone()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return gone()
	}
	size := fi.Size()
	if err := pc.fw.write(wire.FileHead{ID: req.ID, Mode: wireMode(fi.Mode()), MtimeNs: fi.ModTime().UnixNano(), Size: uint64(size)}); err != nil {
		return err
	}
	s := &sendSink{pc: pc, id: req.ID, deflate: !p.cfg.NoCompress && compressible(req.Path)}
	res, err := pc.dbufs.Diff(io.LimitReader(f, size), int(req.BlockSize), req.Blocks, s)
	if s.err != nil {
		return s.err // the connection failed
	}
	if err != nil {
		p.log.Warn("mirror: reading file to send", "path", req.Path, "err", err)
		res.Sum = [32]byte{} // the replica sees the mismatch and asks again
	}
	p.st.filesSent.Add(1)
	p.st.literal.Add(res.Literal)
	p.st.matched.Add(res.Matched)
	return pc.fw.write(wire.FileEnd{ID: req.ID, Sum: res.Sum})
}

// sendSink writes Diff's output as frames, deflating literals while that
// pays off for the file.
type sendSink struct {
	pc      *peer
	id      uint64
	deflate bool
	tried   bool
	err     error
}

func (s *sendSink) Copy(index, count uint64) error {
	s.err = s.pc.fw.write(wire.Copy{ID: s.id, Index: index, Count: count})
	return s.err
}

func (s *sendSink) Literal(data []byte) error {
	m := wire.Literal{ID: s.id, Data: data}
	if s.deflate && len(data) >= 512 {
		if z, ok := s.pc.z.Deflate(data); ok {
			m.Data, m.Deflated = z, true
		} else if !s.tried {
			s.deflate = false // the file's start does not deflate: send it as is
		}
		s.tried = true
	}
	s.err = s.pc.fw.write(m)
	return s.err
}

var _ = fmt.Sprintf

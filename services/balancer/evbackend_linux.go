package balancer

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// evPeer is what one loop keeps about one backend: its socket address and
// the loop's idle keep-alive connections to it, newest last.
type evPeer struct {
	l      *evLoop
	be     *backend
	sa     unix.Sockaddr // nil: not an IP address
	family int
	idle   []*evBackend
}

func (l *evLoop) peer(be *backend) *evPeer {
	p := l.peers[be]
	if p == nil {
		p = &evPeer{l: l, be: be}
		p.sa, p.family = backendSockaddr(be.addr)
		l.peers[be] = p
	}
	return p
}

// get returns an idle connection that has not been idle too long.
func (p *evPeer) get(now time.Time) *evBackend {
	for n := len(p.idle); n > 0; n = len(p.idle) {
		bc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.l.idle--
		bc.idleIdx = -1
		if now.Sub(bc.idleAt) < backendIdleTimeout {
			return bc
		}
		bc.close()
	}
	return nil
}

func (p *evPeer) put(bc *evBackend, now time.Time) {
	if len(p.idle) >= 1024 || !p.be.usable.Load() {
		bc.close()
		return
	}
	bc.c = nil
	bc.idleAt = now
	bc.idleIdx = len(p.idle)
	p.idle = append(p.idle, bc)
	p.l.idle++
}

// remove takes bc out of the idle list.
func (p *evPeer) remove(bc *evBackend) {
	i := bc.idleIdx
	if i < 0 || i >= len(p.idle) || p.idle[i] != bc {
		return
	}
	last := len(p.idle) - 1
	p.idle[i] = p.idle[last]
	p.idle[i].idleIdx = i
	p.idle[last] = nil
	p.idle = p.idle[:last]
	p.l.idle--
	bc.idleIdx = -1
}

// sweep closes connections idle too long, or all of them when the backend
// is not usable (down: they are likely dead; drained or removed: no more
// requests go there).
func (p *evPeer) sweep(now time.Time) {
	all := !p.be.usable.Load()
	for i := 0; i < len(p.idle); {
		bc := p.idle[i]
		if all || now.Sub(bc.idleAt) >= backendIdleTimeout {
			p.remove(bc)
			bc.close()
			continue
		}
		i++
	}
}

func (p *evPeer) closeAll() {
	for len(p.idle) > 0 {
		bc := p.idle[len(p.idle)-1]
		p.remove(bc)
		bc.close()
	}
}

// evBackend is a connection from a loop to a backend.
type evBackend struct {
	p        *evPeer
	fd       int
	seq      uint32
	c        *evClient // the exchange using it; nil while idle
	readable bool
	writable bool
	hup      bool // the peer closed or reset: reads end at once
	reused   bool
	buf      []byte
	r, w     int
	idleAt   time.Time
	idleIdx  int
}

// dial opens a non-blocking connection to the peer. done reports whether
// it is connected already (else the loop waits for it to be writable).
func (p *evPeer) dial() (bc *evBackend, done bool, err error) {
	fd, err := unix.Socket(p.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, false, opError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	err = unix.Connect(fd, p.sa)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return nil, false, opError("dial", err)
	}
	bc = &evBackend{p: p, fd: fd, idleIdx: -1}
	seq, rerr := p.l.register(fd, bc)
	if rerr != nil {
		unix.Close(fd)
		return nil, false, opError("dial", rerr)
	}
	bc.seq = seq
	return bc, err == nil, nil
}

// connectResult reports how a connect in progress ended.
func (bc *evBackend) connectResult() error {
	v, err := unix.GetsockoptInt(bc.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return opError("dial", err)
	}
	if v != 0 {
		return opError("dial", unix.Errno(v))
	}
	return nil
}

func (bc *evBackend) event(ev uint32) {
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		bc.hup = true // sticky: the end of input comes with no further edge
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		bc.readable = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		bc.writable = true
	}
	c := bc.c
	if c == nil {
		// Idle: the backend closed it (or sent something unasked).
		if bc.readable {
			bc.p.remove(bc)
			bc.close()
		}
		return
	}
	c.backendEvent()
}

// close closes the connection and frees its buffer.
func (bc *evBackend) close() {
	if bc.fd < 0 {
		return
	}
	bc.p.l.closeFD(bc.fd)
	bc.fd = -1
	bc.dropBuf()
}

func (bc *evBackend) dropBuf() {
	if bc.buf != nil {
		bc.p.l.putBuf(bc.buf)
		bc.buf, bc.r, bc.w = nil, 0, 0
	}
}

// fill reads what the backend sent into the buffer, growing it up to
// limit bytes. It returns how many bytes came, and io.EOF-like errors.
func (bc *evBackend) fill(limit int) (int, error) {
	if bc.buf == nil {
		bc.buf = bc.p.l.getBuf()
	}
	if bc.w == len(bc.buf) {
		if bc.r > 0 {
			bc.w = copy(bc.buf, bc.buf[bc.r:bc.w])
			bc.r = 0
		} else if len(bc.buf) < limit {
			nb := make([]byte, min(2*len(bc.buf), limit))
			copy(nb, bc.buf[:bc.w])
			bc.p.l.putBuf(bc.buf)
			bc.buf = nb
		} else {
			return 0, errRespHeadTooLarge
		}
	}
	space := len(bc.buf) - bc.w
	n, err := rawRead(bc.fd, bc.buf[bc.w:])
	if n > 0 {
		bc.w += n
		if n < space {
			bc.readable = bc.hup
		}
		return n, nil
	}
	if errors.Is(err, unix.EAGAIN) {
		bc.readable = bc.hup
		return 0, nil
	}
	if err == nil {
		return 0, errBackendEOF
	}
	return 0, opError("read", err)
}

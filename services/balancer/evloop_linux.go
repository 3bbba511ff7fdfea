package balancer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// This file runs the plain-HTTP frontend on Linux with event loops: one
// per CPU, each a goroutine locked to its thread that waits in epoll for
// its client connections and for the backend connections it opened for
// them, so that a request and its answer never change threads and no
// goroutine is woken per request. A loop serves the common exchange whole
// (a request whose body is already read, an answer with a length or no
// body, streamed with back-pressure); anything else (TLS is on another
// listener; chunked or unread request bodies, 100-continue, upgrades,
// PROXY headers, chunked or close-delimited answers, informational
// answers, backends named by host name or at their connection limit) is
// handed to the goroutine engine of h1.go with the bytes already read,
// and that connection stays there.

// listenHTTP opens the plain-HTTP frontend: event loops unless
// cfg.NoEventLoop.
func (b *Balancer) listenHTTP(cfg *Config) (frontend, error) {
	if cfg.NoEventLoop {
		return b.listenH1(cfg)
	}
	fd, addr, err := listenSocket(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	b.addrs.Lock()
	b.addrs.main = addr
	b.addrs.Unlock()
	f := &evFrontend{
		h1Frontend: &h1Frontend{b: b, conns: map[*h1conn]struct{}{}},
		lfd:        fd,
		maxConn:    int64(cfg.MaxConn),
		stopped:    make(chan struct{}),
	}
	return f, nil
}

// evFrontend is the listener and its event loops. Connections handed to
// the goroutine engine live in the embedded h1Frontend.
type evFrontend struct {
	*h1Frontend
	lfd     int
	maxConn int64
	active  atomic.Int64 // client connections open, in loops or handed over

	lmu      sync.Mutex // guards loops, lfd closing and started
	loops    []*evLoop
	started  bool
	lclosed  bool
	stopped  chan struct{}
	stopOnce sync.Once
}

// loopTick is how often a loop checks its deadlines; timeouts fire up to
// this late.
const loopTick = 10 * time.Millisecond

// loopYield is how long a loop runs at most before it lets the scheduler
// run other goroutines.
const loopYield = 2 * time.Millisecond

func (f *evFrontend) serve() error {
	f.lmu.Lock()
	if f.closing.Load() {
		f.lmu.Unlock()
		return nil
	}
	n := min(runtime.NumCPU(), runtime.GOMAXPROCS(0))
	for range n {
		l, err := newLoop(f)
		if err != nil {
			for _, l := range f.loops {
				l.release()
			}
			f.loops = nil
			f.lmu.Unlock()
			return err
		}
		f.loops = append(f.loops, l)
	}
	f.started = true
	for _, l := range f.loops {
		f.wg.Add(1)
		go l.run()
	}
	f.lmu.Unlock()
	<-f.stopped
	return nil
}

// stopAccepting takes the listener out of every loop, then closes it.
func (f *evFrontend) stopAccepting() {
	f.closing.Store(true)
	f.lmu.Lock()
	defer f.lmu.Unlock()
	if f.lclosed {
		return
	}
	f.lclosed = true
	var ack sync.WaitGroup
	for _, l := range f.loops {
		ack.Add(1)
		if !l.do(func(l *evLoop) {
			l.unlisten()
			l.closing = true
			ack.Done()
		}) {
			ack.Done()
		}
	}
	ack.Wait()
	unix.Close(f.lfd)
	f.stopOnce.Do(func() { close(f.stopped) })
}

// shutdown stops accepting, closes idle connections, lets exchanges in
// flight finish (each connection closes after its answer) and cuts what
// is left when ctx is done.
func (f *evFrontend) shutdown(ctx context.Context) {
	f.stopAccepting()
	f.lmu.Lock()
	loops := f.loops
	f.lmu.Unlock()
	for _, l := range loops {
		l.do((*evLoop).closeIdle)
	}
	stop := context.AfterFunc(ctx, func() {
		for _, l := range loops {
			l.do((*evLoop).cutAll)
		}
	})
	defer stop()
	f.h1Frontend.shutdown(ctx)
}

func (f *evFrontend) close() {
	f.stopAccepting()
}

// evHandler is a connection a loop waits on.
type evHandler interface {
	event(ev uint32)
}

// evSlot is a loop's entry for one file descriptor; seq tells a stale
// event (for a descriptor closed and reused in the same batch) apart.
type evSlot struct {
	h   evHandler
	seq uint32
}

// evLoop is one event loop: its epoll instance, its client connections
// and its pools of idle backend connections.
type evLoop struct {
	f    *evFrontend
	b    *Balancer
	ep   int
	wake int // eventfd: commands are waiting

	slots   []evSlot // by file descriptor
	seq     uint32
	clients []*evClient
	peers   map[*backend]*evPeer
	idle    int // idle backend connections in peers

	listening   bool
	closing     bool // stop accepting; close connections when idle
	acceptAfter time.Time

	mu    sync.Mutex
	cmds  []func(*evLoop)
	ended bool         // the loop returned: no more commands
	load  atomic.Int32 // len(clients), for the other loops to read

	now      time.Time // at the last wake-up
	nextTick time.Time
	yielded  time.Time // the last runtime.Gosched
	bufs     [][]byte  // free read buffers of evBufSize
	scratch  []byte    // heads are built here before being written
	resp     head      // the answer head being parsed
}

// evBufSize is a connection's read buffer while it has bytes to read:
// idle connections hold none.
const evBufSize = 4096

func newLoop(f *evFrontend) (*evLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	l := &evLoop{f: f, b: f.b, ep: ep, wake: wake, peers: map[*backend]*evPeer{}, scratch: make([]byte, 0, 2048)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		l.release()
		return nil, fmt.Errorf("adding eventfd to epoll: %w", err)
	}
	l.listen()
	return l, nil
}

func (l *evLoop) release() {
	unix.Close(l.ep)
	unix.Close(l.wake)
}

// wait returns ready events, waiting in epoll_wait when there are none
// until some arrive or, when timed, until the next tick. It is an
// ordinary (not raw) system call, so the runtime hands the loop's P to
// other goroutines while it blocks, and the kernel wakes this thread
// directly when an event comes. (Parking the loop in the runtime's own
// poller instead cost a little less CPU, but only one thread waits there:
// while one loop ran, another loop's events waited for it to park, which
// doubled the 99th percentile.)
func (l *evLoop) wait(evs []unix.EpollEvent, timed bool) int {
	if n := pollNow(l.ep, evs); n > 0 {
		return n
	}
	ms := -1
	if timed {
		ms = max(int(time.Until(l.nextTick)/time.Millisecond), 0) + 1
	}
	n, err := unix.EpollWait(l.ep, evs, ms)
	if err != nil && !errors.Is(err, unix.EINTR) {
		l.b.log.Error("event loop: waiting in epoll", "err", err)
		time.Sleep(loopTick)
	}
	return max(n, 0)
}

// do runs fn on the loop's goroutine; it reports false when the loop has
// ended and fn will not run.
func (l *evLoop) do(fn func(*evLoop)) bool {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return false
	}
	l.cmds = append(l.cmds, fn)
	l.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(l.wake, one[:])
	return true
}

func (l *evLoop) listen() {
	if l.listening {
		return
	}
	err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, l.f.lfd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.f.lfd)})
	l.listening = err == nil
}

func (l *evLoop) unlisten() {
	if l.listening {
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, l.f.lfd, nil)
		l.listening = false
	}
}

func (l *evLoop) run() {
	defer l.f.wg.Done()
	evs := make([]unix.EpollEvent, 256)
	l.now = time.Now()
	l.nextTick = l.now.Add(loopTick)
	for {
		timed := len(l.clients) > 0 || l.idle > 0 || (!l.listening && !l.closing)
		n := l.wait(evs, timed)
		l.now = time.Now()
		if l.now.Sub(l.yielded) > loopYield {
			// A goroutine that never reaches a scheduling point is
			// preempted by a signal after 10 ms; yield before that.
			runtime.Gosched()
			l.yielded = l.now
		}
		for i := range n {
			fd, ev := int(evs[i].Fd), evs[i].Events
			switch {
			case fd == l.f.lfd && l.listening:
				l.accept()
			case fd == l.wake:
				l.commands()
			case fd < len(l.slots) && l.slots[fd].h != nil && l.slots[fd].seq == uint32(evs[i].Pad):
				l.slots[fd].h.event(ev)
			}
		}
		if !l.now.Before(l.nextTick) {
			l.tick()
			l.nextTick = l.now.Add(loopTick)
		}
		if !l.listening && !l.closing && !l.now.Before(l.acceptAfter) && l.f.active.Load() < l.f.maxConn {
			l.listen()
		}
		if l.closing && len(l.clients) == 0 {
			l.mu.Lock()
			l.ended = len(l.cmds) == 0
			l.mu.Unlock()
			if l.ended {
				break
			}
		}
	}
	for _, p := range l.peers {
		p.closeAll()
	}
	l.release()
}

func (l *evLoop) commands() {
	var buf [8]byte
	unix.Read(l.wake, buf[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, fn := range cmds {
		fn(l)
	}
}

// closeIdle starts a graceful stop: idle clients are closed now, the
// others after their answer.
func (l *evLoop) closeIdle() {
	l.closing = true
	for i := len(l.clients) - 1; i >= 0; i-- {
		if i < len(l.clients) {
			if c := l.clients[i]; c.state == csHead && !c.begun {
				c.close()
			}
		}
	}
}

// cutAll closes every connection at once (the grace period is over).
func (l *evLoop) cutAll() {
	l.closing = true
	for len(l.clients) > 0 {
		l.clients[len(l.clients)-1].cut(nil, true)
	}
}

// register adds fd to the loop's epoll, edge-triggered for reading and
// writing, and returns its sequence number.
func (l *evLoop) register(fd int, h evHandler) (uint32, error) {
	for fd >= len(l.slots) {
		l.slots = append(l.slots, make([]evSlot, max(64, len(l.slots)))...)
	}
	l.seq++
	l.slots[fd] = evSlot{h: h, seq: l.seq}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: int32(l.seq)}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.slots[fd] = evSlot{}
		return 0, err
	}
	return l.seq, nil
}

// closeFD closes a descriptor the loop registered (closing removes it
// from epoll: nothing else refers to the socket).
func (l *evLoop) closeFD(fd int) {
	l.slots[fd] = evSlot{}
	unix.Close(fd)
}

// forget takes fd out of the loop without closing it, for a hand-over.
func (l *evLoop) forget(fd int) {
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil)
	l.slots[fd] = evSlot{}
}

func (l *evLoop) getBuf() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b
	}
	return make([]byte, evBufSize)
}

func (l *evLoop) putBuf(b []byte) {
	if cap(b) == evBufSize && len(l.bufs) < 256 {
		l.bufs = append(l.bufs, b[:evBufSize])
	}
}

// accept takes new connections while the frontend is below its limit.
// A loop that has clearly more clients than another passes the new one
// on: every loop sees the listener ready, and the one that runs first
// would otherwise take a whole burst.
func (l *evLoop) accept() {
	f := l.f
	for range 16 {
		if f.active.Load() >= f.maxConn {
			l.unlisten()
			return
		}
		fd, sa, err := unix.Accept4(f.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
				return
			case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE), errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.ENOMEM):
				// Out of descriptors or memory: try again once
				// connections have closed.
				l.unlisten()
				l.acceptAfter = l.now.Add(100 * time.Millisecond)
				return
			default:
				l.b.log.Warn("event loop: accepting", "err", err)
				l.unlisten()
				l.acceptAfter = l.now.Add(time.Second)
				return
			}
		}
		f.active.Add(1)
		if t := l.lighter(); t != nil && t.do(func(t *evLoop) { t.addClient(fd, sa) }) {
			continue
		}
		l.addClient(fd, sa)
	}
}

// lighter returns a loop with at least two clients fewer than l, or nil.
func (l *evLoop) lighter() *evLoop {
	var best *evLoop
	load := l.load.Load() - 1
	for _, o := range l.f.loops {
		if n := o.load.Load(); o != l && n < load {
			best, load = o, n
		}
	}
	return best
}

// addClient starts serving a connection the frontend accepted (and
// counted in active).
func (l *evLoop) addClient(fd int, sa unix.Sockaddr) {
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	c := &evClient{l: l, fd: fd, writable: true}
	ap := sockaddrAddrPort(sa)
	c.remote = ap.String()
	c.ip = ap.Addr().String()
	seq, err := l.register(fd, c)
	if err != nil {
		unix.Close(fd)
		l.f.active.Add(-1)
		return
	}
	c.seq = seq
	l.b.fe.connsNow.Add(1)
	l.b.fe.connsTotal.Add(1)
	c.idx = len(l.clients)
	l.clients = append(l.clients, c)
	l.load.Store(int32(len(l.clients)))
	c.first = true
	c.enterHead()
}

// tick fires the deadlines that passed and closes backend connections
// idle for too long or to backends that are down, drained or removed.
func (l *evLoop) tick() {
	now := l.now
	for i := 0; i < len(l.clients); {
		c := l.clients[i]
		if !c.deadline.IsZero() && !now.Before(c.deadline) {
			c.timeout()
		}
		if i < len(l.clients) && l.clients[i] == c {
			i++
		}
	}
	for be, p := range l.peers {
		p.sweep(now)
		if be.removed.Load() && len(p.idle) == 0 {
			delete(l.peers, be)
		}
	}
}

// errLoopTimeout is a deadline that passed in an event loop.
var errLoopTimeout = &net.OpError{Op: "read", Net: "tcp", Err: errDeadline{}}

type errDeadline struct{}

func (errDeadline) Error() string   { return "i/o timeout" }
func (errDeadline) Timeout() bool   { return true }
func (errDeadline) Temporary() bool { return true }

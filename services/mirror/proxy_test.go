package mirror

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// faultProxy forwards TCP connections to a target and can cut them: Cut
// stops forwarding without closing anything (a cable pulled out: the ends
// only notice by their heartbeats), Restore plugs it back, Sever closes
// every connection. Bytes counts what it forwarded.
type faultProxy struct {
	ln     net.Listener
	target string
	bytes  atomic.Int64
	cut    atomic.Bool
	// limit, when > 0, severs a connection once it carried that many
	// bytes from the target.
	limit atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
	wake  *sync.Cond
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target}
	p.wake = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Restore()
		p.Sever()
	})
	return p
}

func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) Cut() { p.cut.Store(true) }

func (p *faultProxy) Restore() {
	p.cut.Store(false)
	p.mu.Lock()
	p.wake.Broadcast()
	p.mu.Unlock()
}

func (p *faultProxy) Sever() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

// hold blocks while the link is cut.
func (p *faultProxy) hold() {
	p.mu.Lock()
	for p.cut.Load() {
		p.wake.Wait()
	}
	p.mu.Unlock()
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			p.hold()
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			var fromTarget atomic.Int64
			pipe := func(dst, src net.Conn, down bool) {
				defer dst.Close()
				defer src.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						p.hold()
						p.bytes.Add(int64(n))
						if down {
							if l := p.limit.Load(); l > 0 && fromTarget.Add(int64(n)) > l {
								return
							}
						}
						if _, err := dst.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
			go pipe(u, c, false)
			go pipe(c, u, true)
		}()
	}
}

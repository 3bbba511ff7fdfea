package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdingBackend is a backend that loses power after requests reach it:
// it reads every request and answers none (or, when partial, sends the
// answer's head and part of its body, and the rest once finish is
// closed). It answers health checks while healthy; after that it closes
// their connections at once.
type holdingBackend struct {
	t       *testing.T
	addr    string
	partial bool
	healthy atomic.Bool
	got     chan string // "METHOD /path" of each request that arrived
	finish  chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	conns []net.Conn
}

func newHoldingBackend(t *testing.T, partial bool) *holdingBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hb := &holdingBackend{t: t, addr: ln.Addr().String(), partial: partial,
		got: make(chan string, 16), finish: make(chan struct{}), done: make(chan struct{})}
	hb.healthy.Store(true)
	t.Cleanup(func() {
		close(hb.done)
		ln.Close()
		hb.mu.Lock()
		for _, c := range hb.conns {
			c.Close()
		}
		hb.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hb.mu.Lock()
			hb.conns = append(hb.conns, c)
			hb.mu.Unlock()
			go hb.serve(c)
		}
	}()
	return hb
}

func (hb *holdingBackend) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if req.Header.Get("User-Agent") == "piimage-balancer-check" {
			if hb.healthy.Load() {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}
			return
		}
		hb.got <- req.Method + " " + req.URL.Path
		if !hb.partial {
			<-hb.done // power cut: nothing more comes from here
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Backend: held\r\n\r\nabc")
		select {
		case <-hb.finish:
			io.WriteString(c, "def")
		case <-hb.done:
			return
		}
	}
}

// TestMarkDownAbandons: when a backend that holds a request without
// answering is marked down, a request safe to repeat (GET, also with a
// body the balancer holds) is answered by another backend at once, a POST
// gets 502 at once, and a request whose answer had begun is left to
// finish; on both engines.
func TestMarkDownAbandons(t *testing.T) {
	b := newTestBackend(t, "b")
	tests := []struct {
		name, method, path, body string
		partial                  bool
		wantCode                 int
		wantBody                 string
		wantRedispatch           uint64
	}{
		{name: "GET moves", method: "GET", path: "/g", wantCode: 200, wantBody: "b /g 0", wantRedispatch: 1},
		{name: "GET with a body moves", method: "GET", path: "/gb", body: "hello", wantCode: 200, wantBody: "b /gb 5", wantRedispatch: 1},
		{name: "HEAD moves", method: "HEAD", path: "/h", wantCode: 200, wantRedispatch: 1},
		{name: "POST fails at once", method: "POST", path: "/p", body: "hello", wantCode: 502, wantBody: "The server went down before answering."},
		{name: "answer begun: left alone", method: "GET", path: "/slow", partial: true, wantCode: 200, wantBody: "abcdef"},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					a := newHoldingBackend(t, tt.partial)
					bal, url := startBalancer(t, Config{
						Backends: []BackendConfig{{Name: "a", Address: a.addr}, {Name: "b", Address: b.addr, Backup: true, NoCheck: true}},
						Check:    CheckConfig{Interval: 30 * time.Millisecond, Timeout: 100 * time.Millisecond, Fall: 1, Rise: 1},
						// Only abandoning the exchange answers in time.
						ServerTimeout: 30 * time.Second, NoEventLoop: e.noEventLoop,
					})
					abe, bbe := bal.pool.Load().byName["a"], bal.pool.Load().byName["b"]
					bhits := b.hits.Load()
					type result struct {
						code int
						body string
						err  error
						at   time.Time
					}
					res := make(chan result, 1)
					headers := make(chan struct{})
					go func() {
						c := &http.Client{Timeout: 5 * time.Second}
						req, _ := http.NewRequest(tt.method, url+tt.path, strings.NewReader(tt.body))
						if tt.body == "" {
							req.Body = nil
						}
						resp, err := c.Do(req)
						if err != nil {
							res <- result{err: err, at: time.Now()}
							return
						}
						close(headers)
						body, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						res <- result{code: resp.StatusCode, body: string(body), err: err, at: time.Now()}
					}()
					select {
					case got := <-a.got:
						if got != tt.method+" "+tt.path {
							t.Fatalf("backend a got %q", got)
						}
					case <-time.After(5 * time.Second):
						t.Fatal("the request did not reach backend a")
					}
					if tt.partial {
						select {
						case <-headers:
						case <-time.After(5 * time.Second):
							t.Fatal("the answer's head did not reach the client")
						}
					}
					cut := time.Now()
					a.healthy.Store(false) // the power cut: its checks fail now
					waitFor(t, 3*time.Second, "backend a to be marked down", func() bool { return !abe.usable.Load() })
					if tt.partial {
						time.Sleep(100 * time.Millisecond)
						select {
						case r := <-res:
							t.Fatalf("an answer under way was cut: %+v", r)
						default:
						}
						close(a.finish)
					}
					var r result
					select {
					case r = <-res:
					case <-time.After(10 * time.Second):
						t.Fatal("no answer")
					}
					if r.err != nil {
						t.Fatalf("%s %s: %v", tt.method, tt.path, r.err)
					}
					if r.code != tt.wantCode || !strings.Contains(r.body, tt.wantBody) {
						t.Errorf("got %d %q, want %d %q", r.code, r.body, tt.wantCode, tt.wantBody)
					}
					if el := r.at.Sub(cut); el > 2*time.Second {
						t.Errorf("answered %v after the backend stopped passing checks", el)
					}
					if got := abe.redispatch.Load(); got != tt.wantRedispatch {
						t.Errorf("%d redispatched from a, want %d", got, tt.wantRedispatch)
					}
					if moved := b.hits.Load() - bhits; moved != int64(tt.wantRedispatch) {
						t.Errorf("backend b got %d requests, want %d", moved, tt.wantRedispatch)
					}
					waitFor(t, 2*time.Second, "no request in flight", func() bool {
						return abe.inflight.Load() == 0 && bbe.inflight.Load() == 0
					})
					if s := bal.Stats(); tt.wantCode == 502 && s.BadGateway != 1 {
						t.Errorf("bad gateway counted %d times, want 1", s.BadGateway)
					}
				})
			}
		})
	}
}

// TestMarkDownMetrics: the redispatch counter is in the metrics and on
// the stats page.
func TestMarkDownMetrics(t *testing.T) {
	var sb strings.Builder
	s := Stats{Backends: []BackendStats{{Name: "a", Redispatches: 7}}}
	writeMetrics(&sb, s)
	if want := `balancer_backend_redispatches_total{backend="a"} 7`; !strings.Contains(sb.String(), want) {
		t.Errorf("no %q in the metrics", want)
	}
	sb.Reset()
	if err := statsPage.Execute(&sb, s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb.String(), "<th>Redisp.</th>") || !strings.Contains(sb.String(), "<td>7</td>") {
		t.Error("no redispatch column on the stats page")
	}
}

// TestSafeToRepeat lists which requests may go to a second backend.
func TestSafeToRepeat(t *testing.T) {
	tests := []struct {
		head string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"PUT / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"PATCH / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"get / HTTP/1.1\r\nHost: x\r\n\r\n", false}, // methods are case-sensitive
	}
	for _, tt := range tests {
		var h head
		if err := parseRequestHead([]byte(tt.head), &h); err != nil {
			t.Fatalf("%q: %v", tt.head, err)
		}
		if got := safeToRepeat(&h); got != tt.want {
			t.Errorf("%s: safeToRepeat = %v, want %v", strings.SplitN(tt.head, "\r\n", 2)[0], got, tt.want)
		}
	}
}

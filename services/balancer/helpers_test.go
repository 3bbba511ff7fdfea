package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testBackend is a real HTTP server on loopback that can be crashed,
// stopped cleanly, hung and restarted on the same address.
type testBackend struct {
	t     *testing.T
	name  string
	addr  string
	hits  atomic.Int64
	delay atomic.Int64 // per request, nanoseconds
	hang  atomic.Bool  // never answer
	last  atomic.Pointer[http.Request]

	mu     sync.Mutex
	srv    *http.Server
	ln     net.Listener
	holder int // a socket keeping the port ours while the backend is down

	idleTimeout time.Duration // of kept-alive connections; 0: net/http's default
}

// reusePort lets a listener share its port with the holder socket.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// holdPort binds a socket that does not listen to addr, so that while the
// backend is crashed its port refuses connections and no other process on
// the machine can take it before the backend restarts.
func holdPort(t *testing.T, addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		t.Fatalf("holding %s: %v", addr, err)
	}
	return fd
}

func newTestBackend(t *testing.T, name string) *testBackend {
	tb := &testBackend{t: t, name: name, addr: "127.0.0.1:0"}
	tb.start()
	t.Cleanup(tb.crash)
	return tb
}

func (tb *testBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("User-Agent") == "piimage-balancer-check" {
		if tb.hang.Load() {
			<-r.Context().Done()
		}
		return // health checks are not counted as requests
	}
	tb.hits.Add(1)
	tb.last.Store(r)
	if tb.hang.Load() {
		<-r.Context().Done()
		return
	}
	if d := tb.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	switch r.URL.Path {
	case "/big":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Header().Set("X-Backend", tb.name)
		w.Write(bigBody(n))
		return
	case "/early":
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
	case "/bighead":
		w.Header().Set("X-Big-Response", strings.Repeat("r", 3000))
	case "/chunked":
		w.Header().Set("X-Backend", tb.name)
		io.WriteString(w, "part1,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
		return
	case "/ws":
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(c, "echo "+line)
		}
	}
	if r.URL.Path == "/setcookie" {
		w.Header().Add("Set-Cookie", "JSESSIONID=abc; Path=/")
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Backend", tb.name)
	fmt.Fprintf(w, "%s %s %d", tb.name, r.URL.RequestURI(), len(body))
}

func (tb *testBackend) start() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var ln net.Listener
	var err error
	lc := net.ListenConfig{Control: reusePort}
	for i := 0; i < 50; i++ { // the old socket may linger a moment
		if ln, err = lc.Listen(context.Background(), "tcp", tb.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.t.Fatalf("backend %s: %v", tb.name, err)
	}
	tb.addr = ln.Addr().String()
	tb.ln = ln
	if tb.holder == 0 {
		tb.holder = holdPort(tb.t, tb.addr)
	}
	tb.srv = &http.Server{Handler: tb, ErrorLog: nil, IdleTimeout: tb.idleTimeout}
	go tb.srv.Serve(ln)
}

// crash closes the listener and every connection at once, like a killed
// process.
func (tb *testBackend) crash() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.srv != nil {
		tb.srv.Close()
		tb.srv = nil
	}
}

// stop shuts down cleanly: requests in flight finish.
func (tb *testBackend) stop() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tb.srv.Shutdown(ctx)
		tb.srv = nil
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BALANCER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startBalancer runs a balancer on loopback until the test ends.
func startBalancer(t testing.TB, cfg Config) (*Balancer, string) {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if os.Getenv("BALANCER_TEST_ENGINE") == "goroutines" {
		cfg.NoEventLoop = true // run the suite on the other engine
	}
	b, err := NewFromConfig(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("balancer did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})
	return b, "http://" + b.Addr().String()
}

func backendConfigs(tbs ...*testBackend) []BackendConfig {
	var out []BackendConfig
	for _, tb := range tbs {
		out = append(out, BackendConfig{Name: tb.name, Address: tb.addr})
	}
	return out
}

// get sends one GET and returns status, body and the answering backend.
func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("X-Backend")
}

// load sends GETs from workers keep-alive clients until ctx is done or max
// requests were sent, counting answers by backend and failures.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	byBackend  map[string]int
	errs       []string
	wg         sync.WaitGroup
}

func startLoad(ctx context.Context, url string, workers int, max int64) *load {
	l := &load{byBackend: map[string]int{}}
	var sent atomic.Int64
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for ctx.Err() == nil && sent.Add(1) <= max {
				resp, err := c.Get(url)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.fail(resp.Status)
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.byBackend[resp.Header.Get("X-Backend")]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
}

func (l *load) wait() { l.wg.Wait() }

// waitFor polls cond every 5 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawExchange writes req on a new connection and returns everything read
// until the server closes or a second passes.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	io.WriteString(c, req)
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			break
		}
	}
	return sb.String()
}

// refusingAddr returns a loopback address that refuses connections and
// that no other process can take while the test runs: a TCP socket bound
// to it but not listening.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// deadBackend is a testBackend whose address refuses connections.
func deadBackend(t *testing.T, name string) *testBackend {
	return &testBackend{t: t, name: name, addr: refusingAddr(t)}
}

// bigBody is n bytes of a pattern that shows where a byte went missing.
func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%23)
	}
	return b
}

package balancer

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProxyForwards(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	_, url := startBalancer(t, Config{Backends: backendConfigs(a, b), Forwarded: "both"})
	c := &http.Client{}
	seen := map[string]int{}
	for range 10 {
		code, body, be := get(t, c, url+"/x/y?q=1", "Connection", "keep-alive")
		if code != 200 || !strings.HasSuffix(body, " /x/y?q=1 0") {
			t.Fatalf("got %d %q", code, body)
		}
		seen[be]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("roundrobin spread %v", seen)
	}
	r := a.last.Load()
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := r.Header.Get("Forwarded"); !strings.HasPrefix(got, "for=127.0.0.1;host=") || !strings.HasSuffix(got, ";proto=http") {
		t.Errorf("Forwarded = %q", got)
	}
	if !strings.HasPrefix(r.Host, "127.0.0.1:") || r.Host == a.addr {
		t.Errorf("Host %q: want the client's", r.Host)
	}

	// A client's own X-Forwarded-For is not trusted.
	req, _ := http.NewRequest("POST", url+"/post", strings.NewReader("hello"))
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(string(body), "/post 5") {
		t.Errorf("POST body: %q", body)
	}
	last := a.last.Load()
	if b.last.Load() != nil && b.hits.Load() > a.hits.Load() {
		last = b.last.Load()
	}
	if got := last.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("spoofed X-Forwarded-For passed: %q", got)
	}
}

// TestRetryOnConnectFailure: a backend that refuses connections costs a
// retry, never a failed request, and the passive check takes it out.
func TestRetryOnConnectFailure(t *testing.T) {
	a := newTestBackend(t, "a")
	dead := deadBackend(t, "dead")
	bal, url := startBalancer(t, Config{Backends: backendConfigs(a, dead), ErrorLimit: 3, Check: CheckConfig{Interval: time.Hour}})
	c := &http.Client{}
	for i := range 20 {
		if code, _, be := get(t, c, url); code != 200 || be != "a" {
			t.Fatalf("request %d: %d from %q", i, code, be)
		}
	}
	d := bal.pool.Load().byName["dead"]
	if d.connErrors.Load() != 3 || d.retries.Load() != 3 {
		t.Errorf("dead backend: %d connect errors, %d retries; want 3 and 3 (then passive down)", d.connErrors.Load(), d.retries.Load())
	}
	if d.usable.Load() {
		t.Error("dead backend still usable after 3 failed requests")
	}
}

func TestAllDown503(t *testing.T) {
	dead := deadBackend(t, "dead")
	bal, url := startBalancer(t, Config{Backends: backendConfigs(dead), ErrorLimit: 1, Check: CheckConfig{Interval: time.Hour}})
	c := &http.Client{}
	for range 3 {
		code, body, _ := get(t, c, url)
		if code != 503 || !strings.Contains(body, "No server is available") {
			t.Fatalf("got %d %q, want the 503 page", code, body)
		}
		if strings.Contains(strings.ToLower(body), "go") && strings.Contains(body, "version") {
			t.Errorf("error page shows a version: %q", body)
		}
	}
	if bal.Health() == nil {
		t.Error("Health is nil with every backend down")
	}
}

// TestFaultyBackends: a backend that hangs, resets, sends garbage or
// closes early costs at most the server timeout; the balancer answers.
func TestFaultyBackends(t *testing.T) {
	tests := []struct {
		name  string
		serve func(c net.Conn)
		want  int
	}{
		{"hangs", func(c net.Conn) { io.Copy(io.Discard, c) }, 504},
		{"resets", func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, 502},
		{"garbage", func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02garbage\r\n\r\n")
			c.Close()
		}, 502},
		{"closes mid-headers", func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
			c.Close()
		}, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { defer c.Close(); tt.serve(c) }()
				}
			}()
			_, url := startBalancer(t, Config{
				Backends:      []BackendConfig{{Name: "bad", Address: ln.Addr().String(), NoCheck: true}},
				ServerTimeout: 300 * time.Millisecond,
			})
			start := time.Now()
			code, _, _ := get(t, &http.Client{}, url)
			if code != tt.want {
				t.Errorf("status %d, want %d", code, tt.want)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}

// TestHangMidBody: a backend that stops sending in the middle of a body
// costs the server timeout, then the client's connection is cut.
func TestHangMidBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
				time.Sleep(3 * time.Second)
			}()
		}
	}()
	_, url := startBalancer(t, Config{Backends: []BackendConfig{{Name: "slow", Address: ln.Addr().String(), NoCheck: true}}, ServerTimeout: 200 * time.Millisecond})
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("a truncated body read as complete")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
}

// TestBadRequests: malformed and smuggling requests get 4xx and never
// reach a backend.
func TestBadRequests(t *testing.T) {
	a := newTestBackend(t, "a")
	bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), MaxBodyBytes: 10, MaxHeaderBytes: 2048})
	addr := bal.Addr().String()
	tests := []struct {
		name string
		req  string
		want string
	}{
		{"garbage line", "HELLO\r\n\r\n", "HTTP/1.1 400"},
		{"bad version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", "HTTP/1.1 505"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"space in header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", "HTTP/1.1 400"},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "HTTP/1.1 400"},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501"},
		{"bad length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400"},
		{"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890", "HTTP/1.1 413"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n", "HTTP/1.1 431"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "HTTP/1.1 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.hits.Load()
			out := rawExchange(t, addr, tt.req)
			if !strings.HasPrefix(out, tt.want) {
				t.Errorf("got %q, want %s", firstLine(out), tt.want)
			}
			if a.hits.Load() != before {
				t.Errorf("the request reached the backend")
			}
		})
	}
	// A good request after all that still works.
	out := rawExchange(t, addr, "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Errorf("good request: %q", firstLine(out))
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

func TestCookiePersistence(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	bal, url := startBalancer(t, Config{Backends: backendConfigs(a, b), Cookie: &CookieConfig{}, Check: CheckConfig{Interval: time.Hour}})
	c := &http.Client{}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	first := resp.Header.Get("X-Backend")
	if sc := resp.Header.Get("Set-Cookie"); sc != "SERVERID="+first+"; Path=/; HttpOnly" {
		t.Fatalf("Set-Cookie = %q", sc)
	}
	for range 6 {
		code, _, be := get(t, c, url, "Cookie", "x=1; SERVERID="+first+"; y=2")
		if code != 200 || be != first {
			t.Fatalf("pinned request went to %q", be)
		}
	}
	for _, tb := range []*testBackend{a, b} {
		if r := tb.last.Load(); r != nil && strings.Contains(r.Header.Get("Cookie"), "SERVERID") {
			t.Errorf("the persistence cookie reached the backend: %q", r.Header.Get("Cookie"))
		}
	}
	// The pinned backend goes down: the algorithm picks another one and
	// pins the client there.
	pinned := bal.pool.Load().byName[first]
	for range 3 {
		bal.observeCheck(pinned, false, "down", 0)
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Cookie", "SERVERID="+first)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Backend"); got == first || resp.StatusCode != 200 {
		t.Errorf("request pinned to a down backend went to %q (%d)", got, resp.StatusCode)
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "SERVERID="+resp.Header.Get("X-Backend")) {
		t.Errorf("no new pin: %q", sc)
	}
}

func TestCookiePrefix(t *testing.T) {
	a := newTestBackend(t, "a")
	_, url := startBalancer(t, Config{Backends: backendConfigs(a), Cookie: &CookieConfig{Name: "JSESSIONID", Prefix: true}})
	resp, err := http.Get(url + "/setcookie")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sc := resp.Header.Get("Set-Cookie"); sc != "JSESSIONID=a~abc; Path=/" {
		t.Errorf("Set-Cookie = %q", sc)
	}
	get(t, &http.Client{}, url, "Cookie", "JSESSIONID=a~abc")
	if got := a.last.Load().Header.Get("Cookie"); got != "JSESSIONID=abc" {
		t.Errorf("backend got Cookie %q", got)
	}
}

func TestHashAlgorithmsEndToEnd(t *testing.T) {
	a, b, c := newTestBackend(t, "a"), newTestBackend(t, "b"), newTestBackend(t, "c")
	for _, tt := range []struct {
		alg  string
		path func(i int) string
		hdr  func(i int) []string
	}{
		{"uri", func(i int) string { return "/u" + string(rune('a'+i%20)) }, nil},
		{"url_param", func(i int) string { return "/?id=" + string(rune('a'+i%20)) }, nil},
		{"hdr", func(int) string { return "/" }, func(i int) []string { return []string{"X-User", string(rune('a' + i%20))} }},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			_, url := startBalancer(t, Config{Backends: backendConfigs(a, b, c), Algorithm: tt.alg, HashParam: "id", HashHeader: "X-User"})
			cl := &http.Client{}
			where := map[string]string{}
			for i := range 60 {
				var h []string
				if tt.hdr != nil {
					h = tt.hdr(i)
				}
				_, _, be := get(t, cl, url+tt.path(i), h...)
				k := tt.path(i) + strings.Join(h, "")
				if prev, ok := where[k]; ok && prev != be {
					t.Fatalf("key %s went to %s then %s", k, prev, be)
				}
				where[k] = be
			}
			used := map[string]bool{}
			for _, be := range where {
				used[be] = true
			}
			if len(used) < 2 {
				t.Errorf("20 keys all went to %v", used)
			}
		})
	}
}

func TestMaxConnQueue(t *testing.T) {
	a := newTestBackend(t, "a")
	a.delay.Store(int64(50 * time.Millisecond))
	bal, url := startBalancer(t, Config{Backends: []BackendConfig{{Name: "a", Address: a.addr, MaxConn: 2}}, QueueTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := startLoad(ctx, url, 6, 30)
	max := int64(0)
	be := bal.pool.Load().byName["a"]
	for done := make(chan struct{}); ; {
		go func() { l.wait(); close(done) }()
		for {
			select {
			case <-done:
				goto out
			default:
			}
			if n := be.inflight.Load(); n > max {
				max = n
			}
			time.Sleep(time.Millisecond)
		}
	}
out:
	if l.failed.Load() != 0 || l.ok.Load() != 30 {
		t.Errorf("ok %d failed %d: %v", l.ok.Load(), l.failed.Load(), l.errs)
	}
	if max > 2 {
		t.Errorf("%d requests in flight on a backend with max_conn 2", max)
	}
	if be.queued.Load() == 0 {
		t.Error("nothing queued")
	}
}

// TestProtocolDetails covers framing the HTTP/1 engine translates:
// chunked bodies both ways, HTTP/1.0 clients, Expect: 100-continue, HEAD
// and protocol upgrades.
func TestProtocolDetails(t *testing.T) {
	a := newTestBackend(t, "a")
	bal, _ := startBalancer(t, Config{Backends: backendConfigs(a)})
	addr := bal.Addr().String()
	tests := []struct {
		name, req string
		want      []string
		not       []string
	}{
		{"chunked request", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
			[]string{"HTTP/1.1 200", "a /up 7"}, nil},
		{"chunked response to HTTP/1.1", "GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200", "Transfer-Encoding: chunked", "part1,", "part2", "\r\n0\r\n\r\n"}, nil},
		{"chunked response to HTTP/1.0", "GET /chunked HTTP/1.0\r\n\r\n",
			[]string{"HTTP/1.0 200", "Connection: close", "\r\n\r\npart1,part2"}, []string{"Transfer-Encoding"}},
		{"HTTP/1.0 keep-alive", "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			[]string{"HTTP/1.0 200", "Connection: keep-alive", "a /k 0"}, nil},
		{"expect 100-continue", "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
			[]string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", "a /e 2"}, nil},
		{"HEAD", "HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200", "Content-Length: 6"}, []string{"a /h"}},
		{"upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello\n",
			[]string{"HTTP/1.1 101", "Upgrade: echo", "echo hello"}, nil},
		{"large heads both ways", "GET /bighead HTTP/1.1\r\nHost: x\r\nX-Big-Request: " + strings.Repeat("q", 3000) + "\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200", "X-Big-Response: rrrr", "a /bighead 0"}, nil},
		{"HEAD with a body", "HEAD /hb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
			[]string{"HTTP/1.1 200", "Content-Length: 7"}, []string{"a /hb"}},
		{"hop-by-hop stripped", "GET /hop HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\n\r\n",
			[]string{"HTTP/1.1 200"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := rawExchange(t, addr, tt.req)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("%q in\n%s", n, out)
				}
			}
		})
	}
	r := a.last.Load()
	for _, h := range []string{"Keep-Alive", "Proxy-Connection", "X-Secret"} {
		if r.Header.Get(h) != "" {
			t.Errorf("hop-by-hop %s reached the backend", h)
		}
	}
}

// TestRefusedLargeBody: a client still sending a refused body reads the
// 413 instead of a connection reset.
func TestRefusedLargeBody(t *testing.T) {
	a := newTestBackend(t, "a")
	bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), MaxBodyBytes: 1000})
	for i := range 3 {
		c, err := net.Dial("tcp", bal.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
			c.Write(make([]byte, 4000000))
		}()
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, "HTTP/1.1 413") {
			t.Errorf("try %d: %q, %v", i, line, err)
		}
	}
	if a.hits.Load() != 0 {
		t.Error("a refused request reached the backend")
	}
}

// TestSlowClient: a client that sends its head too slowly gets 408 and is
// closed after the client timeout; an idle one is closed silently.
func TestSlowClient(t *testing.T) {
	a := newTestBackend(t, "a")
	bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), ClientTimeout: 200 * time.Millisecond, KeepAlive: 200 * time.Millisecond})
	for _, tt := range []struct {
		name, send, want string
	}{
		{"slow head", "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", "HTTP/1.1 408"},
		{"idle", "", ""},
	} {
		c, err := net.Dial("tcp", bal.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		io.WriteString(c, tt.send)
		out, _ := io.ReadAll(c)
		c.Close()
		if el := time.Since(start); el < 150*time.Millisecond || el > 2*time.Second {
			t.Errorf("%s: closed after %v", tt.name, el)
		}
		if !strings.HasPrefix(string(out), tt.want) || (tt.want == "" && len(out) != 0) {
			t.Errorf("%s: got %q", tt.name, out)
		}
	}
	if a.hits.Load() != 0 {
		t.Error("a request reached the backend")
	}
}

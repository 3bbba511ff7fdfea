package web

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// exchange writes reqs on one connection at once (pipelined) and reads
// one answer per request.
func exchange(t *testing.T, c net.Conn, reqs []string, methods []string) []*http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for i := range reqs {
		req := &http.Request{Method: methods[i]}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		out = append(out, resp)
	}
	return out
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestH1KeepAliveAndPipelining(t *testing.T) {
	f := newFixture(t)
	r := startServer(t, baseConfig(f))
	c, err := net.Dial("tcp", r.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reqs := []string{
		"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"\r\nHEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", // a stray empty line first is allowed
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0,2-3\r\n\r\n",
		"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /about HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nABCDE",
		"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	methods := []string{"GET", "HEAD", "GET", "GET", "GET", "GET", "GET", "GET"}
	// Twice on the same connection: pipelined, then one by one.
	for round := range 2 {
		var resps []*http.Response
		if round == 0 {
			resps = exchange(t, c, reqs, methods)
		} else {
			for i := range reqs {
				resps = append(resps, exchange(t, c, reqs[i:i+1], methods[i:i+1])...)
			}
		}
		want := []struct {
			status int
			body   string
		}{{200, smallText}, {200, ""}, {206, ""}, {200, string(f.big)}, {404, page404}, {301, ""}, {200, smallText}, {200, testHost + "\n"}}
		for i, w := range want {
			got := resps[i]
			b := bodyOf(got)
			if got.StatusCode != w.status || (w.body != "" || i == 1) && b != w.body {
				t.Errorf("round %d answer %d: %d %.40q, want %d %.40q", round, i, got.StatusCode, b, w.status, w.body)
			}
			if got.Close {
				t.Errorf("round %d answer %d closes the connection", round, i)
			}
		}
		if resps[1].ContentLength != int64(len(f.big)) {
			t.Errorf("HEAD Content-Length %d", resps[1].ContentLength)
		}
	}
}

func TestH1Connection(t *testing.T) {
	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.MaxHeaderBytes = 1024
	cfg.MaxURIBytes = 256
	r := startServer(t, cfg)
	tests := []struct {
		name   string
		req    string
		status int
		close  bool   // the server closes after the answer
		conn   string // the Connection header of the answer
	}{
		{"HTTP/1.1 keeps alive", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, false, ""},
		{"Connection: close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, true, "close"},
		{"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n", 200, true, "close"},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, false, "keep-alive"},
		{"absolute form", "GET http://x/small.txt HTTP/1.1\r\nHost: x\r\n\r\n", 200, false, ""},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, true, "close"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, true, "close"},
		{"HTTP/2.0 on HTTP/1 port", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, true, "close"},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, true, "close"},
		{"long target", "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, true, "close"},
		{"long request line", "GET /" + strings.Repeat("a", 2000), 414, true, "close"},
		{"large header", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431, true, "close"},
		{"smuggling", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, true, "close"},
		{"chunked body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 405, true, "close"},
		{"large body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 1000), 405, true, "close"},
		{"small body skipped", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", r.s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.req)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			// ReadResponse turns "Connection: close" into resp.Close.
			conn := resp.Header.Get("Connection")
			if resp.Close {
				conn = "close"
			}
			if resp.StatusCode != tt.status || conn != tt.conn {
				t.Errorf("%d Connection %q, want %d %q", resp.StatusCode, conn, tt.status, tt.conn)
			}
			// A second request shows whether the connection is open.
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			resp2, err := http.ReadResponse(br, nil)
			if tt.close {
				if err == nil {
					t.Errorf("connection still open: second answer %d", resp2.StatusCode)
				}
				return
			}
			if err != nil || resp2.StatusCode != 200 {
				t.Errorf("second request on the connection: %v", err)
			}
		})
	}
}

// TestH1Slowloris checks that a client sending its header byte by byte
// is cut off after ReadHeaderTimeout, however steadily it sends.
func TestH1Slowloris(t *testing.T) {
	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.ReadHeaderTimeout = 300 * time.Millisecond
	cfg.IdleTimeout = 5 * time.Second
	r := startServer(t, cfg)
	c, err := net.Dial("tcp", r.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if d := expectClosed(t, c, 3*time.Second); d > 2*time.Second {
		t.Errorf("closed after %v", d)
	}
	<-done
}

func TestH1IdleTimeout(t *testing.T) {
	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.IdleTimeout = 300 * time.Millisecond
	r := startServer(t, cfg)
	c, err := net.Dial("tcp", r.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A busy connection stays open past the idle timeout...
	for range 4 {
		exchange(t, c, []string{"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"GET"})
		time.Sleep(100 * time.Millisecond)
	}
	// ...an idle one is closed.
	expectClosed(t, c, 3*time.Second)
}

// TestH1WriteTimeout checks that a client that stops reading is cut off.
func TestH1WriteTimeout(t *testing.T) {
	f := newFixture(t)
	writeHuge(t, f.root)
	cfg := baseConfig(f)
	cfg.WriteTimeout = 300 * time.Millisecond
	r := startServer(t, cfg)
	stalledDownload(t, r.s.Addr().String())
	eventually(t, 5*time.Second, "the stalled connection to be closed", func() bool { return r.s.Stats().Conns == 0 })
}

func TestH1MaxConns(t *testing.T) {
	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.MaxConns = 2
	r := startServer(t, cfg)
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", r.s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		exchange(t, c, []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"GET"})
		conns = append(conns, c)
	}
	c, err := net.Dial("tcp", r.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	expectClosed(t, c, 3*time.Second)
	if st := r.s.Stats(); st.ConnsRefused != 1 || st.Conns != 2 {
		t.Errorf("stats %+v", st)
	}
	conns[0].Close()
	eventually(t, 3*time.Second, "a free slot", func() bool { return r.s.Stats().Conns < 2 })
	c2, err := net.Dial("tcp", r.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if resps := exchange(t, c2, []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"GET"}); resps[0].StatusCode != 200 {
		t.Errorf("after a slot freed: %d", resps[0].StatusCode)
	}
}

func TestAccessLogLines(t *testing.T) {
	f := newFixture(t)
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	var buf syncBuffer
	cfg := baseConfig(f)
	cfg.AccessLog = &buf
	cfg.AccessLogFile = filepath.Join(t.TempDir(), "access.log")
	cfg.TLSCert, cfg.TLSKey, cfg.TLSListen = certFile, keyFile, "127.0.0.1:0"
	r := startServer(t, cfg)
	fr := r.plainFront()
	fr.do(t, "GET", "/small.txt?q=\"1\"", map[string]string{"User-Agent": "test \"agent\"", "Referer": "http://ref/"})
	fr.do(t, "HEAD", "/missing", nil)
	fr.raw(t, "GET /"+strings.Repeat("a", 20000)+" HTTP/1.1\r\nHost: x\r\n\r\n")
	// The 414 line is logged after its answer reached the client: wait for
	// it so the lines keep their order.
	eventually(t, 5*time.Second, "3 log lines", func() bool { return strings.Count(buf.String(), "\n") >= 3 })
	r.tlsFront(pool).do(t, "GET", "/small.txt", map[string]string{"User-Agent": "h2"})
	want := []*regexp.Regexp{
		regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /small.txt\?q=\\x221\\x22 HTTP/1.1" 200 12 "http://ref/" "test \\x22agent\\x22"$`),
		regexp.MustCompile(`^127\.0\.0\.1 - - \[.*\] "HEAD /missing HTTP/1.1" 404 0 "-" "Go-http-client/1.1"$`),
		regexp.MustCompile(`^127\.0\.0\.1 - - \[.*\] "-" 414 \d+ "-" "-"$`),
		regexp.MustCompile(`^127\.0\.0\.1 - - \[.*\] "GET /small.txt HTTP/2.0" 200 12 "-" "h2"$`),
	}
	check := func(name, text string) {
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines:\n%s", name, len(lines), text)
		}
		for i, re := range want {
			if !re.MatchString(lines[i]) {
				t.Errorf("%s line %d: %q does not match %s", name, i, lines[i], re)
			}
		}
	}
	eventually(t, 5*time.Second, "4 log lines", func() bool { return strings.Count(buf.String(), "\n") >= 4 })
	check("stdout", buf.String())
	eventually(t, 5*time.Second, "4 lines in the file", func() bool {
		b, _ := os.ReadFile(cfg.AccessLogFile)
		return strings.Count(string(b), "\n") >= 4
	})
	b, _ := os.ReadFile(cfg.AccessLogFile)
	check("file", string(b))
}

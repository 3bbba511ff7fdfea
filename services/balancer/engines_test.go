package balancer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests in this file run on both HTTP/1 engines: the Linux event
// loops (with their hand-overs to goroutines) and the goroutine engine.

var engines = []struct {
	name        string
	noEventLoop bool
}{{"loops", false}, {"goroutines", true}}

// TestPipelining: requests sent back to back in one write are answered in
// order, bodies included, and the connection goes on.
func TestPipelining(t *testing.T) {
	a := newTestBackend(t, "a")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), NoEventLoop: e.noEventLoop})
			req := "GET /one HTTP/1.1\r\nHost: x\r\n\r\n" +
				"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
				"\r\nGET /three HTTP/1.1\r\nHost: x\r\n\r\n" +
				"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n" +
				"GET /four HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			out := rawExchange(t, bal.Addr().String(), req)
			want := []string{"a /one 0", "a /two 5", "a /three 0", "part1,", "a /four 0"}
			at := 0
			for _, w := range want {
				i := strings.Index(out[at:], w)
				if i < 0 {
					t.Fatalf("no %q (in order) in\n%s", w, out)
				}
				at += i + len(w)
			}
			if n := strings.Count(out, "HTTP/1.1 200"); n != 5 {
				t.Errorf("%d answers, want 5:\n%s", n, out)
			}
		})
	}
}

// TestLargeAnswerSlowClient: an answer much larger than the buffers
// reaches a client that reads slowly, byte for byte, and the next request
// on the connection still works.
func TestLargeAnswerSlowClient(t *testing.T) {
	a := newTestBackend(t, "a")
	const size = 3 << 20
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), NoEventLoop: e.noEventLoop})
			c, err := net.Dial("tcp", bal.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", size)
			time.Sleep(200 * time.Millisecond) // the buffers fill up: back-pressure
			br := bufio.NewReaderSize(c, 1024)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(body, bigBody(size)) {
				t.Fatalf("body: %d bytes, equal %v, %v", len(body), bytes.Equal(body, bigBody(size)), err)
			}
			io.WriteString(c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			if string(body) != "a /after 0" {
				t.Errorf("next request: %q", body)
			}
		})
	}
}

// TestHandovers: what the event loops pass to goroutines mid-exchange
// (chunked and informational answers) or before choosing a backend
// (bodies not yet read, 100-continue) keeps the connection and its
// following requests intact.
func TestHandovers(t *testing.T) {
	a := newTestBackend(t, "a")
	big := strings.Repeat("b", 200000)
	tests := []struct {
		name, req string
		want      []string
	}{
		{"chunked then more", "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{"Transfer-Encoding: chunked", "part1,", "a /next 0"}},
		{"early hints", "GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 103 Early Hints", "Link: </style.css>", "HTTP/1.1 200", "a /early 0"}},
		{"large body then more", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + big + "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{"a /up 200000", "a /next 0"}},
		{"continue then more", "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhiGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{"100 Continue", "a /e 2", "a /next 0"}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), NoEventLoop: e.noEventLoop})
			for _, tt := range tests {
				out := rawExchange(t, bal.Addr().String(), tt.req)
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("%s: no %q in\n%.500s", tt.name, w, out)
					}
				}
			}
			waitFor(t, 2*time.Second, "connections to close", func() bool { return bal.fe.connsNow.Load() == 0 })
			if be := bal.pool.Load().byName["a"]; be.inflight.Load() != 0 {
				t.Errorf("%d requests still in flight", be.inflight.Load())
			}
		})
	}
}

// TestFrontendMaxConn: connections beyond MaxConn wait until one closes.
func TestFrontendMaxConn(t *testing.T) {
	a := newTestBackend(t, "a")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), MaxConn: 2, NoEventLoop: e.noEventLoop})
			var held []net.Conn
			for range 2 {
				c, err := net.Dial("tcp", bal.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				held = append(held, c)
			}
			waitFor(t, 2*time.Second, "two connections", func() bool { return bal.fe.connsNow.Load() == 2 })
			third, err := net.Dial("tcp", bal.Addr().String()) // queued by the kernel
			if err != nil {
				t.Fatal(err)
			}
			defer third.Close()
			io.WriteString(third, "GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(third)
			third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := br.ReadByte(); err == nil {
				t.Fatal("a connection beyond MaxConn was served")
			}
			held[0].Close()
			third.SetReadDeadline(time.Now().Add(3 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("after a slot freed: %v", err)
			}
			resp.Body.Close()
		})
	}
}

// TestHostNameBackend: a backend named by host name is served (the event
// loops hand such requests to the goroutine engine, which resolves it).
func TestHostNameBackend(t *testing.T) {
	a := newTestBackend(t, "a")
	_, port, _ := net.SplitHostPort(a.addr)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			_, url := startBalancer(t, Config{Backends: []BackendConfig{{Name: "a", Address: "localhost:" + port, NoCheck: true}}, NoEventLoop: e.noEventLoop})
			c := &http.Client{}
			for i := range 3 {
				if code, body, _ := get(t, c, url+"/n"+strconv.Itoa(i)); code != 200 || body != "a /n"+strconv.Itoa(i)+" 0" {
					t.Fatalf("got %d %q", code, body)
				}
			}
		})
	}
}

// TestStaleBackendConnection: a pooled connection the backend closed
// while idle costs no failed request and no error on the backend.
func TestStaleBackendConnection(t *testing.T) {
	a := newTestBackend(t, "a")
	a.crash()
	a.idleTimeout = 30 * time.Millisecond
	a.start()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, url := startBalancer(t, Config{Backends: backendConfigs(a), NoEventLoop: e.noEventLoop, Check: CheckConfig{Interval: time.Hour}})
			c := &http.Client{}
			for range 4 {
				if code, _, _ := get(t, c, url); code != 200 {
					t.Fatalf("status %d", code)
				}
				time.Sleep(100 * time.Millisecond)
			}
			be := bal.pool.Load().byName["a"]
			if be.respErrors.Load() != 0 || be.connErrors.Load() != 0 {
				t.Errorf("%d response errors, %d connect errors", be.respErrors.Load(), be.connErrors.Load())
			}
		})
	}
}

// TestClientLeavesMidAnswer: a client that closes while a large answer is
// relayed frees everything and counts no backend error.
func TestClientLeavesMidAnswer(t *testing.T) {
	a := newTestBackend(t, "a")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), NoEventLoop: e.noEventLoop, Check: CheckConfig{Interval: time.Hour}})
			for range 3 {
				c, err := net.Dial("tcp", bal.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(c, "GET /big?n=4000000 HTTP/1.1\r\nHost: x\r\n\r\n")
				buf := make([]byte, 10000)
				io.ReadFull(c, buf)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
			be := bal.pool.Load().byName["a"]
			waitFor(t, 3*time.Second, "the exchanges to end", func() bool {
				return be.inflight.Load() == 0 && bal.fe.connsNow.Load() == 0
			})
			if be.respErrors.Load() != 0 {
				t.Errorf("%d backend errors for clients that left", be.respErrors.Load())
			}
		})
	}
}

// TestBackendDropsReusedConnection: a backend that closes a kept-alive
// connection instead of answering its next request (the race of an idle
// timeout) costs a retry on a new connection, not a failed request.
func TestBackendDropsReusedConnection(t *testing.T) {
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
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if i == 1 {
						return // the second request on a connection: dropped
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
				}
			}()
		}
	}()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, url := startBalancer(t, Config{Backends: []BackendConfig{{Name: "a", Address: ln.Addr().String(), NoCheck: true}}, NoEventLoop: e.noEventLoop})
			c := &http.Client{}
			for i := range 6 {
				if code, body, _ := get(t, c, url+"/r"+strconv.Itoa(i)); code != 200 || body != "/r"+strconv.Itoa(i) {
					t.Fatalf("request %d: %d %q", i, code, body)
				}
			}
			if be := bal.pool.Load().byName["a"]; be.respErrors.Load() != 0 {
				t.Errorf("%d response errors", be.respErrors.Load())
			}
		})
	}
}

// TestStopCutsAfterGrace: a stop waits at most Grace for an exchange in
// flight, then cuts it.
func TestStopCutsAfterGrace(t *testing.T) {
	a := newTestBackend(t, "a")
	a.hang.Store(true)
	defer a.hang.Store(false)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, err := NewFromConfig(Config{Addr: "127.0.0.1:0", Backends: backendConfigs(a), Grace: 200 * time.Millisecond,
				NoEventLoop: e.noEventLoop, Check: CheckConfig{Interval: time.Hour}}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- bal.Run(ctx) }()
			<-bal.Ready()
			c, err := net.Dial("tcp", bal.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
			be := bal.pool.Load().byName["a"]
			waitFor(t, 2*time.Second, "the request to reach the backend", func() bool { return be.inflight.Load() == 1 })
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
			if el := time.Since(start); el < 150*time.Millisecond || el > 2*time.Second {
				t.Errorf("stopped after %v with a 200 ms grace", el)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(make([]byte, 100)); err == nil {
				t.Errorf("the cut client read %d bytes", n)
			}
			if be.inflight.Load() != 0 {
				t.Errorf("%d still in flight", be.inflight.Load())
			}
		})
	}
}

// TestIPv6Client: the forwarding headers name an IPv6 client as the
// goroutine engine's net.Conn shows it.
func TestIPv6Client(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback")
	} else {
		ln.Close()
	}
	a := newTestBackend(t, "a")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			_, url := startBalancer(t, Config{Addr: "[::1]:0", Backends: backendConfigs(a), Forwarded: "both", NoEventLoop: e.noEventLoop})
			if code, _, _ := get(t, &http.Client{}, url); code != 200 {
				t.Fatalf("status %d", code)
			}
			r := a.last.Load()
			if got := r.Header.Get("X-Forwarded-For"); got != "::1" {
				t.Errorf("X-Forwarded-For = %q", got)
			}
			if got := r.Header.Get("Forwarded"); !strings.HasPrefix(got, `for="[::1]";`) {
				t.Errorf("Forwarded = %q", got)
			}
		})
	}
}

// TestHeadCutShort: a connection that ends in the middle of a request
// head gets 400 and reaches no backend.
func TestHeadCutShort(t *testing.T) {
	a := newTestBackend(t, "a")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			bal, _ := startBalancer(t, Config{Backends: backendConfigs(a), NoEventLoop: e.noEventLoop})
			c, err := net.Dial("tcp", bal.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			out, _ := io.ReadAll(c)
			if !strings.HasPrefix(string(out), "HTTP/1.1 400") {
				t.Errorf("got %q", out)
			}
			if a.hits.Load() != 0 {
				t.Error("a cut request reached the backend")
			}
		})
	}
}

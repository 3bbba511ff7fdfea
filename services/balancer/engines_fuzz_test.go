package balancer

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzEnginesAgree sends the same bytes to a balancer on each engine (the
// Linux event loops with their hand-overs, and a goroutine per
// connection) and requires the same answers: same status lines in the
// same order, and the same bodies from the backend.
func FuzzEnginesAgree(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		"\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
		"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("l", 5000) + "\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(fuzzBackend)}
	go srv.Serve(ln)
	f.Cleanup(func() { srv.Close() })
	var addrs []string
	for _, e := range engines {
		bal, _ := startBalancer(f, Config{
			Backends:       []BackendConfig{{Name: "a", Address: ln.Addr().String(), NoCheck: true}},
			NoEventLoop:    e.noEventLoop,
			MaxHeaderBytes: 4096,
			MaxBodyBytes:   1 << 20,
			ClientTimeout:  time.Second,
		})
		addrs = append(addrs, bal.Addr().String())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var outs []string
		for _, a := range addrs {
			outs = append(outs, fuzzExchange(t, a, in))
		}
		if outs[0] != outs[1] {
			t.Errorf("the engines answer differently to %q:\n%s: %q\n%s: %q", in, engines[0].name, outs[0], engines[1].name, outs[1])
		}
	})
}

// fuzzBackend answers with what it got; /c* chunked, /h* after an
// informational answer.
func fuzzBackend(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	msg := fmt.Sprintf("%s %s %d\n", r.Method, r.URL.RequestURI(), len(body))
	switch {
	case strings.HasPrefix(r.URL.Path, "/c"):
		io.WriteString(w, msg)
		w.(http.Flusher).Flush()
		io.WriteString(w, "more\n")
	case strings.HasPrefix(r.URL.Path, "/h"):
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, msg)
	default:
		io.WriteString(w, msg)
	}
}

var statusLine = regexp.MustCompile(`(?m)^HTTP/1\.[01] [0-9]{3}`)

// fuzzExchange sends in, half-closes and returns the answers' status
// lines and the backend's echo lines.
func fuzzExchange(t *testing.T, addr string, in []byte) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	go func() {
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
	}()
	out, _ := io.ReadAll(c)
	var sb strings.Builder
	for _, l := range bytes.Split(out, []byte("\n")) {
		if statusLine.Match(l) || bytes.HasPrefix(l, []byte("GET ")) || bytes.HasPrefix(l, []byte("POST ")) || bytes.HasPrefix(l, []byte("HEAD ")) {
			sb.Write(bytes.TrimSpace(l))
			sb.WriteByte('|')
		}
	}
	return sb.String()
}

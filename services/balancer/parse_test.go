package balancer

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func parseRequestString(s string) (*head, error) {
	br := bufio.NewReaderSize(strings.NewReader(s), 4096)
	var spill []byte
	raw, _, err := readHead(br, 16<<10, &spill)
	if err != nil {
		return nil, err
	}
	h := &head{}
	return h, parseRequestHead(raw, h)
}

func TestParseRequestHead(t *testing.T) {
	tests := []struct {
		in      string
		code    int // 0: accepted
		chunked bool
		cl      int64
		close   bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, -1, false},
		{"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, -1, false},
		{"GET / HTTP/1.0\r\n\r\n", 0, false, -1, true},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, false, -1, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", 0, false, -1, true},
		{"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", 0, false, 12, false},
		{"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n", 0, false, 12, false},
		{"POST /x HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n", 0, true, -1, false},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, -1, false},
		{"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, -1, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX:  spaced value \t\r\n\r\n", 0, false, -1, false},
		// Refused.
		{"GET / HTTP/1.1\r\n\r\n", 400, false, 0, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, false, 0, false},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, false, 0, false},
		{"GET / FTP/1.1\r\nHost: a\r\n\r\n", 400, false, 0, false},
		{"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, false, 0, false},
		{"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, false, 0, false},
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, false, 0, false},
		{"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400, false, 0, false},
		{"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, false, 0, false},
		{"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, false, 0, false},
		{"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, false, 0, false},
		{"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, false, 0, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", 400, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, false, 0, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, false, 0, false},
		{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, false, 0, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 17000) + "\r\n\r\n", 431, false, 0, false},
	}
	for _, tt := range tests {
		h, err := parseRequestString(tt.in)
		if tt.code != 0 {
			he, ok := err.(*httpError)
			if !ok || he.code != tt.code {
				t.Errorf("%q: err %v, want %d", tt.in, err, tt.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if h.chunked != tt.chunked || h.contentLength != tt.cl || h.connClose != tt.close {
			t.Errorf("%q: chunked %v length %d close %v", tt.in, h.chunked, h.contentLength, h.connClose)
		}
	}
}

func TestParseResponseHead(t *testing.T) {
	for _, tt := range []struct {
		in     string
		ok     bool
		status int
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true, 200},
		{"HTTP/1.1 204\r\n\r\n", true, 204},
		{"HTTP/1.0 200 OK\r\n\r\n", true, 200},
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false, 0},
		{"HTTP/1.1 2000 OK\r\n\r\n", false, 0},
		{"HTTP/2 200 OK\r\n\r\n", false, 0},
		{"SSH-2.0-OpenSSH\r\n\r\n", false, 0},
		{"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", false, 0},
	} {
		var h head
		err := parseResponseHead([]byte(tt.in), &h)
		if (err == nil) != tt.ok || h.status != tt.status && tt.ok {
			t.Errorf("%q: status %d err %v", tt.in, h.status, err)
		}
	}
}

func TestRelayChunked(t *testing.T) {
	for _, tt := range []struct {
		in, raw, data string
		ok            bool
	}{
		{"3\r\nabc\r\n0\r\n\r\nNEXT", "3\r\nabc\r\n0\r\n\r\n", "abc", true},
		{"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", "abc0123456789", true},
		{"3\r\nabcd\r\n0\r\n\r\n", "", "", false},
		{"z\r\nabc\r\n0\r\n\r\n", "", "", false},
		{"3\nabc\r\n0\r\n\r\n", "", "", false},
		{"3\r\nab", "", "", false},
		{"fffffffffffffffff\r\n", "", "", false},
	} {
		for _, raw := range []bool{true, false} {
			var out bytes.Buffer
			br := bufio.NewReader(strings.NewReader(tt.in))
			_, err := relayChunked(&out, deadlineReader{br, nopConn{}, 0, nil}, raw, 0)
			if (err == nil) != tt.ok {
				t.Errorf("%q raw=%v: err %v", tt.in, raw, err)
				continue
			}
			want := tt.data
			if raw {
				want = tt.raw
			}
			if tt.ok && out.String() != want {
				t.Errorf("%q raw=%v: wrote %q, want %q", tt.in, raw, out.String(), want)
			}
		}
	}
	var out bytes.Buffer
	br := bufio.NewReader(strings.NewReader("5\r\nabcde\r\n5\r\nabcde\r\n0\r\n\r\n"))
	if _, err := relayChunked(&out, deadlineReader{br, nopConn{}, 0, nil}, true, 8); err != errBodyTooLarge {
		t.Errorf("limit: %v", err)
	}
}

// nopConn is a net.Conn whose deadlines do nothing, for reader tests.
type nopConn struct{ net.Conn }

func (nopConn) SetReadDeadline(time.Time) error { return nil }

func TestKeys(t *testing.T) {
	for _, tt := range []struct {
		uri          string
		length, dpth int
		want         string
	}{
		{"/a/b/c?x=1", 0, 0, "/a/b/c"},
		{"/a/b/c?x=1", 0, 2, "/a/b"},
		{"/a/b/c", 0, 1, "/a"},
		{"/a/b/c", 3, 0, "/a/"},
		{"/a/b/c", 3, 2, "/a/"},
		{"/", 0, 5, "/"},
	} {
		if got := uriKey(tt.uri, tt.length, tt.dpth); got != tt.want {
			t.Errorf("uriKey(%q, %d, %d) = %q, want %q", tt.uri, tt.length, tt.dpth, got, tt.want)
		}
		if got := string(uriKey([]byte(tt.uri), tt.length, tt.dpth)); got != tt.want {
			t.Errorf("uriKey([]byte %q) = %q", tt.uri, got)
		}
	}
	for _, tt := range []struct{ q, name, want string }{
		{"a=1&id=42&b=2", "id", "42"}, {"id=", "id", ""}, {"idx=1", "id", ""}, {"id", "id", ""},
	} {
		if got, _ := queryParam(tt.q, tt.name); got != tt.want {
			t.Errorf("queryParam(%q, %q) = %q", tt.q, tt.name, got)
		}
	}
	k1, _ := sourceKey("10.0.0.1:1234")
	k2, _ := sourceKey("[::ffff:10.0.0.1]:999")
	if k1 != k2 {
		t.Error("an IPv4-mapped client hashes differently")
	}
	// The net/http and HTTP/1 engine keys agree.
	r, _ := http.NewRequest("GET", "http://x/a/b?id=7", nil)
	r.RequestURI = "/a/b?id=7"
	r.Header.Set("X-User", "u1")
	h, err := parseRequestString("GET /a/b?id=7 HTTP/1.1\r\nHost: x\r\nX-User: u1\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"uri", "url_param", "hdr"} {
		cfg := &Config{Algorithm: alg, HashParam: "id", HashHeader: "X-User"}
		a, _ := requestKey(cfg, r)
		b, _ := headKey(cfg, h, "1.2.3.4:5")
		if a != b {
			t.Errorf("%s: keys differ", alg)
		}
	}
}

func TestMainDomain(t *testing.T) {
	for in, want := range map[string]string{
		"haproxy.1wt.eu": "1wt", "www.example.org:8080": "example", "example.org": "example",
		"tuubi.metropolia.fi.": "metropolia", "localhost": "localhost", "10.1.2.3": "10.1.2.3",
		"10.1.2.3:80": "10.1.2.3", "[::1]:80": "[::1]:80", "": "",
	} {
		if got := mainDomain(in); got != want {
			t.Errorf("mainDomain(%q) = %q, want %q", in, got, want)
		}
		if got := string(mainDomain([]byte(in))); got != want {
			t.Errorf("mainDomain([]byte %q) = %q", in, got)
		}
	}
}

func TestCookieHelpers(t *testing.T) {
	c := &CookieConfig{Name: "SERVERID"}
	if v, ok := findCookie([]string{"a=1; SERVERID=web2; b=2"}, "SERVERID"); !ok || v != "web2" {
		t.Errorf("findCookie = %q %v", v, ok)
	}
	for _, tt := range []struct{ in, want string }{
		{"a=1; SERVERID=web2; b=2", "a=1; b=2"},
		{"SERVERID=web2", ""},
		{"a=1", "a=1"},
		{"XSERVERID=1", "XSERVERID=1"},
	} {
		if got, _ := stripPersistenceLine(tt.in, c); got != tt.want {
			t.Errorf("strip(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	p := &CookieConfig{Name: "JSESSIONID", Prefix: true}
	if got, _ := stripPersistenceLine("JSESSIONID=web1~abc; x=1", p); got != "JSESSIONID=abc; x=1" {
		t.Errorf("prefix strip = %q", got)
	}
	if got := pinnedBackend(http.Header{"Cookie": {"JSESSIONID=web1~abc"}}, p); got != "web1" {
		t.Errorf("prefix pin = %q", got)
	}
	if got, ok := prefixSetCookie("JSESSIONID=abc; Path=/", p, "web1"); !ok || got != "JSESSIONID=web1~abc; Path=/" {
		t.Errorf("prefixSetCookie = %q", got)
	}
}

// TestProxyV2Golden checks the header bytes against the spec's layout.
func TestProxyV2Golden(t *testing.T) {
	src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 51000}
	dst := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 80}
	got := hex.EncodeToString(appendProxyV2(nil, src, dst))
	want := "0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c0000201" + "c6336407" + "c738" + "0050"
	if got != want {
		t.Errorf("IPv4 header\n got %s\nwant %s", got, want)
	}
	h, n, err := parseProxyV2(appendProxyV2(nil, src, dst))
	if err != nil || n != 28 || h.Src.String() != "192.0.2.1:51000" || h.Dst.String() != "198.51.100.7:80" {
		t.Errorf("parse: %+v %d %v", h, n, err)
	}
	v6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}
	h, n, err = parseProxyV2(appendProxyV2(nil, v6, dst))
	if err != nil || n != 52 || h.Src.String() != "[2001:db8::1]:443" || h.Dst.String() != "[::ffff:198.51.100.7]:80" {
		t.Errorf("mixed families: %+v %d %v", h, n, err)
	}
	if hex.EncodeToString(appendProxyV2Local(nil)) != "0d0a0d0a000d0a515549540a"+"20"+"00"+"0000" {
		t.Error("LOCAL header")
	}
}

func FuzzRequestHead(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	f.Add("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
	f.Add("GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseRequestString(s)
		if err != nil {
			return
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatal("accepted both Content-Length and chunked")
		}
		if !isToken(h.method) || !validTarget(h.target) {
			t.Fatalf("accepted method %q target %q", h.method, h.target)
		}
		for _, f := range h.fields {
			if !isToken(f.name) || bytes.ContainsAny(f.value, "\r\n\x00") {
				t.Fatalf("accepted field %q: %q", f.name, f.value)
			}
		}
	})
}

func FuzzResponseHead(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
	f.Add("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		var h head
		if parseResponseHead([]byte(s), &h) == nil && (h.status < 100 || h.status > 999) {
			t.Fatalf("status %d", h.status)
		}
	})
}

func FuzzChunked(f *testing.F) {
	f.Add("3\r\nabc\r\n0\r\n\r\n")
	f.Add("1;a=b\r\nx\r\n0\r\nT: 1\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		var out bytes.Buffer
		br := bufio.NewReaderSize(strings.NewReader(s), 16)
		if _, err := relayChunked(&out, deadlineReader{br, nopConn{}, 0, nil}, true, 1<<20); err != nil {
			return
		}
		if !strings.HasPrefix(s, out.String()) {
			t.Fatalf("raw relay changed the body: %q -> %q", s, out.String())
		}
		io.Copy(io.Discard, br)
	})
}

func FuzzProxyV2(f *testing.F) {
	f.Add(appendProxyV2(nil, &net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 5}, &net.TCPAddr{IP: net.IPv4(6, 7, 8, 9), Port: 10}))
	f.Add(appendProxyV2Local(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseProxyV2(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		if !h.Local {
			again, _, err := parseProxyV2(appendProxyV2(nil, net.TCPAddrFromAddrPort(h.Src), net.TCPAddrFromAddrPort(h.Dst)))
			if err != nil || again.Src.Addr().Unmap() != h.Src.Addr().Unmap() || again.Src.Port() != h.Src.Port() {
				t.Fatalf("round trip %+v -> %+v (%v)", h, again, err)
			}
		}
	})
}

func FuzzCookies(f *testing.F) {
	f.Add("a=1; SERVERID=web2; b=2", false)
	f.Add("JSESSIONID=web1~abc", true)
	f.Fuzz(func(t *testing.T, line string, prefix bool) {
		c := &CookieConfig{Name: "SERVERID", Prefix: prefix}
		out, _ := stripPersistenceLine(line, c)
		if !prefix {
			if _, ok := findCookie([]string{out}, "SERVERID"); ok {
				t.Fatalf("strip(%q) = %q keeps the cookie", line, out)
			}
		}
		pinnedBackend(http.Header{"Cookie": {line}}, c)
		prefixSetCookie(line, c, "web1")
	})
}

func BenchmarkParseRequestHead(b *testing.B) {
	raw := []byte("GET /index.html?x=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\nCookie: SERVERID=web1; a=b\r\nConnection: keep-alive\r\n\r\n")
	var h head
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := parseRequestHead(raw, &h); err != nil {
			b.Fatal(err)
		}
	}
}

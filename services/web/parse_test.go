package web

import (
	"strings"
	"testing"
)

func TestFindHeadEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next", 27},
		{"GET / HTTP/1.0\n\n", 16},
		{"GET / HTTP/1.0\r\n\r\n", 18},
		{"GET / HTTP/1.1\r\nHost: a\r\n", -1},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r", -1},
		{"GET / HTTP/1.1\r\nHost: a\n\r\n", 26},
		{"GET / HTTP/1.1", -1},
		{"", -1},
	}
	for _, tt := range tests {
		if got := findHeadEnd([]byte(tt.in), 0); got != tt.want {
			t.Errorf("findHeadEnd(%q) = %d, want %d", tt.in, got, tt.want)
		}
		// Resuming a search gives the same answer, wherever it resumes.
		for from := range len(tt.in) {
			if got := findHeadEnd([]byte(tt.in), from); got != tt.want && from <= max(tt.want-2, 0) {
				t.Errorf("findHeadEnd(%q, %d) = %d, want %d", tt.in, from, got, tt.want)
			}
		}
	}
	// Byte by byte, as a slow client sends it.
	in := "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"
	scanned := 0
	for n := 1; n <= len(in); n++ {
		got := findHeadEnd([]byte(in[:n]), scanned)
		if n < len(in) && got != -1 || n == len(in) && got != len(in) {
			t.Fatalf("after %d bytes: %d", n, got)
		}
		scanned = n
	}
}

func TestSkipEmptyLines(t *testing.T) {
	for in, want := range map[string]int{"\r\n\r\nGET": 4, "\nGET": 1, "GET": 0, "\r": 0, "\r\n\r": 2} {
		if got := skipEmptyLines([]byte(in)); got != want {
			t.Errorf("skipEmptyLines(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestParseHead(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		status int
		check  func(*head) bool
	}{
		{"simple", "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n", 0, func(h *head) bool {
			return string(h.method) == "GET" && string(h.target) == "/a?b" && h.minor == 1 && h.host && h.contentLength == -1
		}},
		{"http/1.0 without host", "GET / HTTP/1.0\r\n\r\n", 0, func(h *head) bool { return h.minor == 0 && !h.host }},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 0, nil},
		{"fields", "HEAD / HTTP/1.1\r\nhOsT: x\r\nRange: bytes=0-1\r\nIf-None-Match: \"a\"\r\nIf-None-Match: \"b\"\r\n" +
			"Accept-Encoding: gzip\r\nIf-Modified-Since: Sun, 22 Nov 2026 04:20:08 GMT\r\nConnection: Keep-Alive, Upgrade\r\n" +
			"User-Agent: ua \r\nReferer:\thttp://r/\r\nIf-Match: *\r\nIf-Range: \"a\"\r\nIf-Unmodified-Since: x\r\n\r\n", 0, func(h *head) bool {
			return string(h.rangeSpec) == "bytes=0-1" && string(h.ifNoneMatch) == `"a", "b"` && string(h.acceptEncoding) == "gzip" &&
				string(h.ifModifiedSince) == "Sun, 22 Nov 2026 04:20:08 GMT" && h.connKeepAlive && !h.connClose &&
				string(h.userAgent) == "ua" && string(h.referer) == "http://r/" && string(h.ifMatch) == "*" &&
				string(h.ifRange) == `"a"` && string(h.ifUnmodifiedSince) == "x"
		}},
		{"connection close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, func(h *head) bool { return h.connClose }},
		{"content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 0, func(h *head) bool { return h.contentLength == 5 }},
		{"same content-length twice", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, nil},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 0, func(h *head) bool { return h.chunked }},
		{"two ranges", "GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n", 0, func(h *head) bool { return h.rangeTwice }},
		{"absolute form", "GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", 0, nil},
		{"utf-8 target", "GET /\xc3\xbc HTTP/1.1\r\nHost: x\r\n\r\n", 0, nil},

		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, nil},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, nil},
		{"differing content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, nil},
		{"bad content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, nil},
		{"smuggling", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, nil},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400, nil},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400, nil},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", 400, nil},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\x00\r\n\r\n", 400, nil},
		{"lower-case method ok as token", "get / HTTP/1.1\r\nHost: x\r\n\r\n", 0, nil},
		{"no target", "GET HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil},
		{"target with control", "GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil},
		{"target with fragment", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400, nil},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, nil},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, nil},
		{"not http", "GET / FTP/1.0\r\nHost: x\r\n\r\n", 400, nil},
		{"http/0.9", "GET /\r\n\r\n", 400, nil},
		{"long target", "GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, nil},
		{"many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X: y\r\n", maxHeaderFields) + "\r\n", 431, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h head
			status := parseHead([]byte(tt.in), &h, 64)
			if status != tt.status {
				t.Fatalf("status = %d, want %d", status, tt.status)
			}
			if tt.check != nil && !tt.check(&h) {
				t.Errorf("parsed %+v", h)
			}
		})
	}
}

func TestSplitTarget(t *testing.T) {
	tests := []struct{ in, path, query string }{
		{"/a?b=c", "/a", "b=c"},
		{"/a", "/a", ""},
		{"/a?", "/a", ""},
		{"http://host/x/y?q", "/x/y", "q"},
		{"HTTP://host", "/", ""},
		{"https://host?q", "/", "q"},
		{"*", "*", ""},
		{"host:80", "host:80", ""},
	}
	for _, tt := range tests {
		p, q, _ := splitTarget(tt.in)
		if p != tt.path || q != tt.query {
			t.Errorf("splitTarget(%q) = %q, %q; want %q, %q", tt.in, p, q, tt.path, tt.query)
		}
	}
}

// FuzzParseHead checks that the parser never panics, never reads beyond a
// head, and that what it accepts is consistent.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a?b HTTP/1.0\n\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,5-\r\nIf-None-Match: \"a\"\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"\r\n\r\nGET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[skipEmptyLines(b):]
		end := findHeadEnd(b, 0)
		if end < 0 {
			return
		}
		if end > len(b) {
			t.Fatalf("head end %d beyond %d bytes", end, len(b))
		}
		var h head
		if parseHead(b[:end], &h, 8<<10) != 0 {
			return
		}
		if !isToken(h.method) || len(h.target) == 0 || (h.minor != 0 && h.minor != 1) {
			t.Fatalf("accepted %q as %+v", b[:end], h)
		}
		if h.minor == 1 && !h.host {
			t.Fatalf("accepted HTTP/1.1 without Host: %q", b[:end])
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatalf("accepted both framings: %q", b[:end])
		}
		path, _, _ := splitTarget(string(h.target))
		cleanPath(path, false)
	})
}

package web

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveCase is one request and what its answer must hold. In header
// values, ETAG and LASTMOD stand for the ETag and Last-Modified of the
// path's plain GET, fetched first.
type serveCase struct {
	name   string
	method string // "" means GET
	path   string
	hdr    map[string]string
	status int
	body   *string           // exact body, when set
	want   map[string]string // exact header values; "" means absent
	check  func(t *testing.T, f *fixture, resp *http.Response, body []byte)
}

func sp(s string) *string { return &s }

var serveCases = []serveCase{
	{name: "root index", path: "/", status: 200, body: sp(indexHTML),
		want: map[string]string{"Content-Type": "text/html; charset=utf-8", "Accept-Ranges": "bytes", "Content-Encoding": "", "Vary": "", "Cache-Control": ""},
		check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
			if !strings.HasPrefix(resp.Header.Get("ETag"), `"`) || resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Date") == "" {
				t.Errorf("validators or Date missing: %v", resp.Header)
			}
		}},
	{name: "index by name", path: "/index.html", status: 200, body: sp(indexHTML)},
	{name: "folder without slash", path: "/about", status: 301, want: map[string]string{"Location": "/about/"}},
	{name: "folder without slash keeps query", path: "/about?x=1&y", status: 301, want: map[string]string{"Location": "/about/?x=1&y"}},
	{name: "folder index", path: "/about/", status: 200, body: sp(aboutHTML)},
	{name: "query ignored", path: "/small.txt?v=2", status: 200, body: sp(smallText)},
	{name: "folder without index, listing off", path: "/docs/", status: 404, body: sp(page404)},
	{name: "missing file gets custom 404", path: "/missing", status: 404, body: sp(page404),
		want: map[string]string{"Content-Type": "text/html; charset=utf-8", "ETag": "", "Last-Modified": ""}},
	{name: "trailing slash on a file", path: "/small.txt/", status: 404},
	{name: "HEAD", method: "HEAD", path: "/small.txt", status: 200, body: sp(""),
		want: map[string]string{"Content-Length": "12", "Content-Type": "text/plain; charset=utf-8"}},
	{name: "HEAD of a 404", method: "HEAD", path: "/missing", status: 404, body: sp("")},
	{name: "empty file", path: "/empty.txt", status: 200, body: sp(""), want: map[string]string{"Content-Length": "0"}},
	{name: "type css", path: "/style.css", status: 200, body: sp(styleCSS), want: map[string]string{"Content-Type": "text/css; charset=utf-8"}},
	{name: "type js", path: "/app.js", status: 200, want: map[string]string{"Content-Type": "text/javascript; charset=utf-8"}},
	{name: "type upper-case extension", path: "/img.PNG", status: 200, want: map[string]string{"Content-Type": "image/png"}},
	{name: "type json", path: "/data.json", status: 200, want: map[string]string{"Content-Type": "application/json"}},
	{name: "type unknown", path: "/noext", status: 200, want: map[string]string{"Content-Type": "application/octet-stream"}},
	{name: "escaped name", path: "/sp%20ace.txt", status: 200, body: sp("space\n")},

	// Precompressed siblings.
	{name: "gzip sibling", path: "/style.css", hdr: map[string]string{"Accept-Encoding": "gzip, deflate"}, status: 200,
		want: map[string]string{"Content-Encoding": "gzip", "Vary": "Accept-Encoding", "Content-Type": "text/css; charset=utf-8"},
		check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
			if !bytes.Equal(body, f.cssGz) {
				t.Errorf("body is not style.css.gz")
			}
			if resp.Header.Get("ETag") == "" || strings.Contains(resp.Header.Get("ETag"), "-gz") == false {
				t.Errorf("gzip ETag %q should differ from the plain one", resp.Header.Get("ETag"))
			}
		}},
	{name: "no gzip asked", path: "/style.css", status: 200, body: sp(styleCSS),
		want: map[string]string{"Content-Encoding": "", "Vary": "Accept-Encoding"}},
	{name: "gzip refused with q=0", path: "/style.css", hdr: map[string]string{"Accept-Encoding": "gzip;q=0, br"}, status: 200, body: sp(styleCSS),
		want: map[string]string{"Content-Encoding": ""}},
	{name: "no sibling", path: "/app.js", hdr: map[string]string{"Accept-Encoding": "gzip"}, status: 200,
		want: map[string]string{"Content-Encoding": "", "Vary": ""}},
	{name: "range of the gzip sibling", path: "/style.css", hdr: map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-1"}, status: 206,
		body: sp("\x1f\x8b"), want: map[string]string{"Content-Encoding": "gzip"}},

	// Ranges.
	{name: "range", path: "/small.txt", hdr: map[string]string{"Range": "bytes=0-4"}, status: 206, body: sp("hello"),
		want: map[string]string{"Content-Range": "bytes 0-4/12", "Content-Length": "5"}},
	{name: "suffix range", path: "/small.txt", hdr: map[string]string{"Range": "bytes=-6"}, status: 206, body: sp("world\n")},
	{name: "open range", path: "/small.txt", hdr: map[string]string{"Range": "bytes=6-"}, status: 206, body: sp("world\n")},
	{name: "unsatisfiable range", path: "/small.txt", hdr: map[string]string{"Range": "bytes=100-"}, status: 416,
		want: map[string]string{"Content-Range": "bytes */12"}},
	{name: "malformed range ignored", path: "/small.txt", hdr: map[string]string{"Range": "bytes=5-1"}, status: 200, body: sp(smallText)},
	{name: "other unit ignored", path: "/small.txt", hdr: map[string]string{"Range": "lines=1-2"}, status: 200, body: sp(smallText)},
	{name: "multiple ranges", path: "/small.txt", hdr: map[string]string{"Range": "bytes=0-0,6-10"}, status: 206,
		check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
			checkMultipart(t, resp, body, "text/plain; charset=utf-8", []string{"h", "world"}, []string{"bytes 0-0/12", "bytes 6-10/12"})
		}},
	{name: "If-Range current", path: "/small.txt", hdr: map[string]string{"Range": "bytes=0-4", "If-Range": "ETAG"}, status: 206, body: sp("hello")},
	{name: "If-Range date", path: "/small.txt", hdr: map[string]string{"Range": "bytes=0-4", "If-Range": "LASTMOD"}, status: 206, body: sp("hello")},
	{name: "If-Range stale", path: "/small.txt", hdr: map[string]string{"Range": "bytes=0-4", "If-Range": `"old"`}, status: 200, body: sp(smallText)},
	{name: "range of a big file", path: "/big.bin", hdr: map[string]string{"Range": "bytes=100000-100009"}, status: 206,
		check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
			if !bytes.Equal(body, f.big[100000:100010]) {
				t.Errorf("wrong bytes")
			}
		}},
	{name: "big file", path: "/big.bin", status: 200,
		check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
			if !bytes.Equal(body, f.big) {
				t.Errorf("big.bin: got %d bytes, differing", len(body))
			}
		}},
	{name: "multiple ranges of a big file", path: "/big.bin", hdr: map[string]string{"Range": "bytes=0-2,-3"}, status: 206,
		check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
			n := len(f.big)
			checkMultipart(t, resp, body, "application/octet-stream", []string{string(f.big[:3]), string(f.big[n-3:])}, nil)
		}},

	// Conditional requests.
	{name: "If-None-Match", path: "/small.txt", hdr: map[string]string{"If-None-Match": "ETAG"}, status: 304, body: sp(""),
		want: map[string]string{"Content-Length": "", "Content-Type": ""},
		check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
			if resp.Header.Get("ETag") == "" {
				t.Error("304 without ETag")
			}
		}},
	{name: "If-None-Match keeps Cache-Control and Vary", path: "/style.css", hdr: map[string]string{"If-None-Match": "ETAG"}, status: 304,
		want: map[string]string{"Cache-Control": "public, max-age=60", "Vary": "Accept-Encoding"}},
	{name: "If-None-Match other", path: "/small.txt", hdr: map[string]string{"If-None-Match": `"nope"`}, status: 200, body: sp(smallText)},
	{name: "If-Modified-Since", path: "/small.txt", hdr: map[string]string{"If-Modified-Since": "LASTMOD"}, status: 304},
	{name: "If-Modified-Since old", path: "/small.txt", hdr: map[string]string{"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, status: 200},
	{name: "If-Match fails", path: "/small.txt", hdr: map[string]string{"If-Match": `"nope"`}, status: 412},
	{name: "If-Match holds", path: "/small.txt", hdr: map[string]string{"If-Match": "ETAG"}, status: 200, body: sp(smallText)},
	{name: "If-Unmodified-Since fails", path: "/small.txt", hdr: map[string]string{"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, status: 412},

	// Methods.
	{name: "POST", method: "POST", path: "/small.txt", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},
	{name: "DELETE", method: "DELETE", path: "/small.txt", status: 405},
	{name: "OPTIONS", method: "OPTIONS", path: "/", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},

	// Dotfiles and symbolic links.
	{name: "dotfile hidden", path: "/.secret", status: 404, body: sp(page404)},
	{name: "dot folder hidden", path: "/.git/config", status: 404},
	{name: "escaped dot folder hidden", path: "/%2egit/config", status: 404},
	{name: "dotfile in a folder hidden", path: "/docs/.hidden", status: 404},
	{name: "well-known served", path: "/.well-known/acme.txt", status: 200, body: sp("acme\n")},
	{name: "link inside root", path: "/link-in", status: 200, body: sp(smallText)},
	{name: "link to folder inside root", path: "/link-in-dir/", status: 200, body: sp(aboutHTML)},
	{name: "relative link up, inside root", path: "/about/up-link", status: 200, body: sp(smallText)},
	{name: "link out of root", path: "/link-out", status: 404, body: sp(page404)},
	{name: "relative link out of root", path: "/link-out-rel", status: 404},
	{name: "folder link out of root", path: "/dir-out/inner.txt", status: 404},
	{name: "FIFO", path: "/fifo", status: 404},

	// Built-in pages and rules.
	{name: "whoami", path: "/whoami", status: 200, body: sp(testHost + "\n"),
		want: map[string]string{"Cache-Control": "no-store", "Content-Type": "text/plain; charset=utf-8"}},
	{name: "HEAD whoami", method: "HEAD", path: "/whoami", status: 200, body: sp("")},
	{name: "health", path: "/healthz", status: 200, body: sp("ok\n"), want: map[string]string{"Cache-Control": "no-store"}},
	{name: "cache rule by name", path: "/style.css", status: 200, want: map[string]string{"Cache-Control": "public, max-age=60"}},
	{name: "cache rule by folder", path: "/static/x.txt", status: 200, want: map[string]string{"Cache-Control": "max-age=3600"}},
	{name: "no cache rule", path: "/small.txt", status: 200, want: map[string]string{"Cache-Control": ""}},
}

// rawCases are requests a well-behaved client cannot send: they go out
// byte for byte.
var rawCases = []struct {
	name, target string
	status       int
}{
	{"dot-dot", "/../../../etc/passwd", 400},
	{"dot-dot in folder", "/about/../../outside/secret.txt", 400},
	{"encoded dot-dot", "/%2e%2e/%2e%2e/etc/passwd", 400},
	{"encoded slashes", "/..%2f..%2fetc%2fpasswd", 400},
	{"mixed encoding", "/.%2e/outside/secret.txt", 400},
	{"backslashes", "/..\\..\\etc\\passwd", 400},
	{"encoded backslash", "/about%5c..%5c..%5cetc/passwd", 400},
	{"NUL", "/small.txt%00.html", 400},
	{"CRLF injection", "/x%0d%0aSet-Cookie:%20a=b", 400},
	{"bad escape", "/%zz", 400},
	{"not a path", "small.txt", 400},
	{"asterisk", "*", 400},
	{"dot segment cleaned", "/./about/./", 200},
	{"double slash cleaned", "//about//", 200},
	{"absolute form", "http://example.com/small.txt", 200},
}

func TestServe(t *testing.T) {
	f := newFixture(t)
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	for _, mode := range []struct {
		name string
		set  func(*Config)
	}{
		{"memory", func(*Config) {}},
		// Nothing fits in the cache and every request checks the disk:
		// every answer comes from an open file.
		{"disk", func(c *Config) { c.FileCacheBytes = 1; c.FileCacheTTL = -1 }},
	} {
		cfg := baseConfig(f)
		cfg.TLSCert, cfg.TLSKey, cfg.TLSListen = certFile, keyFile, "127.0.0.1:0"
		mode.set(&cfg)
		r := startServer(t, cfg)
		for _, fr := range []front{r.plainFront(), r.tlsFront(pool)} {
			t.Run(mode.name+"/"+fr.name, func(t *testing.T) {
				for _, tc := range serveCases {
					t.Run(tc.name, func(t *testing.T) { runServeCase(t, f, fr, tc) })
				}
				for _, tc := range rawCases {
					t.Run("raw "+tc.name, func(t *testing.T) {
						resp, body := fr.raw(t, "GET "+tc.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
						if resp.StatusCode != tc.status {
							t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
						}
						if bytes.Contains(body, []byte("secret")) || bytes.Contains(body, []byte("root:")) {
							t.Errorf("leaked: %q", body)
						}
					})
				}
			})
		}
	}
}

func runServeCase(t *testing.T, f *fixture, fr front, tc serveCase) {
	method := tc.method
	if method == "" {
		method = "GET"
	}
	hdr := map[string]string{}
	for k, v := range tc.hdr {
		if v == "ETAG" || v == "LASTMOD" {
			resp, _ := fr.do(t, "GET", tc.path, nil)
			if v == "ETAG" {
				v = resp.Header.Get("ETag")
			} else {
				v = resp.Header.Get("Last-Modified")
			}
		}
		hdr[k] = v
	}
	resp, body := fr.do(t, method, tc.path, hdr)
	if fr.name == "h2" && resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != tc.status {
		t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
	}
	if tc.body != nil && string(body) != *tc.body {
		t.Errorf("body %q, want %q", body, *tc.body)
	}
	for k, v := range tc.want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && method != "HEAD" && resp.StatusCode != 304 {
		if cl != itoa(len(body)) {
			t.Errorf("Content-Length %s but %d bytes", cl, len(body))
		}
	}
	if tc.check != nil {
		tc.check(t, f, resp, body)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// checkMultipart checks a multipart/byteranges body.
func checkMultipart(t *testing.T, resp *http.Response, body []byte, ctype string, parts, ranges []string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			if i != len(parts) {
				t.Errorf("%d parts, want %d", i, len(parts))
			}
			return
		}
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		data, _ := io.ReadAll(p)
		if i >= len(parts) {
			t.Fatalf("extra part %q", data)
		}
		if string(data) != parts[i] {
			t.Errorf("part %d = %q, want %q", i, data, parts[i])
		}
		if p.Header.Get("Content-Type") != ctype {
			t.Errorf("part %d Content-Type %q", i, p.Header.Get("Content-Type"))
		}
		if ranges != nil && p.Header.Get("Content-Range") != ranges[i] {
			t.Errorf("part %d Content-Range %q, want %q", i, p.Header.Get("Content-Range"), ranges[i])
		}
	}
}

func TestServeOptions(t *testing.T) {
	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.Listing = true
	cfg.ShowDotfiles = true
	cfg.SymlinksOutsideRoot = true
	cfg.WhoAmIPath = "/who"
	cfg.HealthPath = Off
	cfg.NotFoundPage = "/about/index.html"
	cfg.Index = "a.txt"
	cfg.MimeTypes = map[string]string{".txt": "text/x-test"}
	r := startServer(t, cfg)
	fr := r.plainFront()
	tests := []serveCase{
		{name: "listing", path: "/about/", status: 200, want: map[string]string{"Content-Type": "text/html; charset=utf-8"},
			check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
				for _, s := range []string{`href="index.html"`, `href="up-link"`, `href="../"`} {
					if !bytes.Contains(body, []byte(s)) {
						t.Errorf("listing lacks %s:\n%s", s, body)
					}
				}
			}},
		{name: "listing escapes names", path: "/", status: 200,
			check: func(t *testing.T, f *fixture, resp *http.Response, body []byte) {
				if !bytes.Contains(body, []byte(`href="sp%20ace.txt"`)) || !bytes.Contains(body, []byte(`href=".secret"`)) {
					t.Errorf("listing:\n%s", body)
				}
			}},
		{name: "other index", path: "/docs/", status: 200, body: sp("a\n"), want: map[string]string{"Content-Type": "text/x-test"}},
		{name: "dotfiles shown", path: "/.secret", status: 200, body: sp("secret\n")},
		{name: "still no dot-dot", path: "/docs/.hidden", status: 200},
		{name: "link out followed", path: "/link-out", status: 200, body: sp("outside secret\n")},
		{name: "folder link out followed", path: "/dir-out/inner.txt", status: 200, body: sp("outside inner\n")},
		{name: "other whoami path", path: "/who", status: 200, body: sp(testHost + "\n")},
		{name: "old whoami path is a file path", path: "/whoami", status: 404, body: sp(aboutHTML)},
		{name: "health off", path: "/healthz", status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runServeCase(t, f, fr, tc) })
	}
	resp, body := fr.raw(t, "GET /../outside/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 400 || bytes.Contains(body, []byte("secret")) {
		t.Errorf("dot-dot with links allowed: %d %q", resp.StatusCode, body)
	}
}

func TestServeNoCustom404(t *testing.T) {
	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.NotFoundPage = "/nope.html"
	r := startServer(t, cfg)
	runServeCase(t, f, r.plainFront(), serveCase{path: "/missing", status: 404, body: sp("404 Not Found\n"),
		want: map[string]string{"Content-Type": "text/plain; charset=utf-8"}})
}

// TestServeChangedFiles checks that a file replaced on disk (as the mirror
// does, by renaming a new file over it) is served whole: old or new,
// never mixed, and new once the cache's time is up.
func TestServeChangedFiles(t *testing.T) {
	f := newFixture(t)
	replace := func(name string, data []byte) {
		tmp := f.root + "/." + name + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.root+"/"+name); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("check every request", func(t *testing.T) {
		cfg := baseConfig(f)
		cfg.FileCacheTTL = -1
		fr := startServer(t, cfg).plainFront()
		resp1, _ := fr.do(t, "GET", "/small.txt", nil)
		replace("small.txt", []byte("changed!\n"))
		resp2, body := fr.do(t, "GET", "/small.txt", nil)
		if string(body) != "changed!\n" || resp2.Header.Get("ETag") == resp1.Header.Get("ETag") {
			t.Errorf("after change: %q, ETag %s then %s", body, resp1.Header.Get("ETag"), resp2.Header.Get("ETag"))
		}
		os.Remove(f.root + "/small.txt")
		if resp, _ := fr.do(t, "GET", "/small.txt", nil); resp.StatusCode != 404 {
			t.Errorf("after removal: %d", resp.StatusCode)
		}
		replace("small.txt", []byte(smallText))
		// A .gz sibling appearing is noticed too.
		os.WriteFile(f.root+"/app.js.gz", []byte("gz"), 0o644)
		if resp, _ := fr.do(t, "GET", "/app.js", map[string]string{"Accept-Encoding": "gzip"}); resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("new sibling not served")
		}
		os.Remove(f.root + "/app.js.gz")
	})
	t.Run("cached", func(t *testing.T) {
		cfg := baseConfig(f)
		cfg.FileCacheTTL = time.Hour
		fr := startServer(t, cfg).plainFront()
		fr.do(t, "GET", "/small.txt", nil)
		replace("small.txt", []byte("changed again\n"))
		// Small files come from memory, consistent with their ETag.
		if _, body := fr.do(t, "GET", "/small.txt", nil); string(body) != smallText {
			t.Errorf("cached small file: %q", body)
		}
		// Large files are opened per request; a changed one is noticed
		// and served whole with its own headers.
		fr.do(t, "GET", "/big.bin", nil)
		newBig := bytes.Repeat([]byte("n"), 400<<10)
		replace("big.bin", newBig)
		resp, body := fr.do(t, "GET", "/big.bin", nil)
		if !bytes.Equal(body, newBig) || resp.Header.Get("Content-Length") != itoa(len(newBig)) {
			t.Errorf("replaced big file: %d bytes, Content-Length %s", len(body), resp.Header.Get("Content-Length"))
		}
		replace("big.bin", f.big)
		replace("small.txt", []byte(smallText))
	})
}

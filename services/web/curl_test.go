package web

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCurl checks the answers with curl, an outside client with its own
// HTTP implementation. It skips when curl is not installed.
func TestCurl(t *testing.T) {
	curlPath, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	f := newFixture(t)
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir)
	cfg := baseConfig(f)
	cfg.TLSCert, cfg.TLSKey, cfg.TLSListen = certFile, keyFile, "127.0.0.1:0"
	r := startServer(t, cfg)
	base := "http://" + r.s.Addr().String()
	tlsPort := r.s.TLSAddr().String()[strings.LastIndex(r.s.TLSAddr().String(), ":")+1:]

	curl := func(t *testing.T, args ...string) (headers, body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		hfile, bfile := filepath.Join(t.TempDir(), "h"), filepath.Join(t.TempDir(), "b")
		args = append([]string{"-sS", "-D", hfile, "-o", bfile}, args...)
		out, err := exec.CommandContext(ctx, curlPath, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		h, _ := os.ReadFile(hfile)
		b, _ := os.ReadFile(bfile)
		return strings.ReplaceAll(string(h), "\r\n", "\n"), string(b) + string(out)
	}
	has := func(t *testing.T, headers string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(strings.ToLower(headers), strings.ToLower(w)) {
				t.Errorf("headers lack %q:\n%s", w, headers)
			}
		}
	}

	t.Run("range", func(t *testing.T) {
		h, b := curl(t, "-r", "0-4", base+"/small.txt")
		has(t, h, "HTTP/1.1 206", "Content-Range: bytes 0-4/12", "Content-Length: 5")
		if b != "hello" {
			t.Errorf("body %q", b)
		}
	})
	t.Run("multiple ranges", func(t *testing.T) {
		h, b := curl(t, "-r", "0-0,6-10", base+"/small.txt")
		has(t, h, "HTTP/1.1 206", "Content-Type: multipart/byteranges; boundary=")
		if !strings.Contains(b, "Content-Range: bytes 0-0/12\r\n\r\nh\r\n") || !strings.Contains(b, "Content-Range: bytes 6-10/12\r\n\r\nworld\r\n") {
			t.Errorf("body %q", b)
		}
	})
	t.Run("unsatisfiable range", func(t *testing.T) {
		h, _ := curl(t, "-r", "500-", base+"/small.txt")
		has(t, h, "HTTP/1.1 416", "Content-Range: bytes */12")
	})
	t.Run("etag", func(t *testing.T) {
		etags := filepath.Join(t.TempDir(), "etags")
		h, _ := curl(t, "--etag-save", etags, base+"/small.txt")
		has(t, h, "HTTP/1.1 200", "ETag: \"")
		h, b := curl(t, "--etag-compare", etags, base+"/small.txt")
		has(t, h, "HTTP/1.1 304")
		if b != "" {
			t.Errorf("304 with body %q", b)
		}
	})
	t.Run("if-modified-since", func(t *testing.T) {
		// -z with a date sends If-Modified-Since.
		h, _ := curl(t, "-z", time.Now().Add(time.Hour).UTC().Format(time.RFC1123), base+"/small.txt")
		has(t, h, "HTTP/1.1 304")
		h, _ = curl(t, "-z", "1 Jan 2000", base+"/small.txt")
		has(t, h, "HTTP/1.1 200")
	})
	t.Run("gzip", func(t *testing.T) {
		h, b := curl(t, "--compressed", base+"/style.css")
		has(t, h, "Content-Encoding: gzip", "Vary: Accept-Encoding", "Content-Type: text/css")
		if b != strings.Repeat(styleCSS, 3) {
			t.Errorf("decoded body %q", b)
		}
		h, b = curl(t, base+"/style.css")
		has(t, h, "Vary: Accept-Encoding")
		if strings.Contains(strings.ToLower(h), "content-encoding") || b != styleCSS {
			t.Errorf("without --compressed: %s %q", h, b)
		}
	})
	t.Run("head", func(t *testing.T) {
		// curl -I writes the header (and nothing else) to the output.
		h, b := curl(t, "-I", base+"/big.bin")
		has(t, h, "HTTP/1.1 200", "Content-Length: 307200", "Accept-Ranges: bytes")
		if b != strings.ReplaceAll(h, "\n", "\r\n") {
			t.Errorf("HEAD answer has more than the header: %q", b)
		}
	})
	t.Run("big file", func(t *testing.T) {
		_, b := curl(t, base+"/big.bin")
		if !bytes.Equal([]byte(b), f.big) {
			t.Errorf("big.bin differs (%d bytes)", len(b))
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		_, b := curl(t, "-w", "[%{num_connects}]", base+"/small.txt", base+"/index.html")
		if !strings.Contains(b, "[1]") || !strings.Contains(b, "[0]") {
			t.Errorf("connections per transfer: %q", b)
		}
	})
	t.Run("http/1.0", func(t *testing.T) {
		h, b := curl(t, "--http1.0", base+"/small.txt")
		has(t, h, "HTTP/1.1 200", "Connection: close")
		if b != smallText {
			t.Errorf("body %q", b)
		}
	})
	t.Run("traversal", func(t *testing.T) {
		for _, p := range []string{"/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/link-out", "/.secret"} {
			h, b := curl(t, "--path-as-is", base+p)
			if strings.Contains(h, "200 OK") || strings.Contains(b, "secret") || strings.Contains(b, "root:") {
				t.Errorf("%s: %s %q", p, h, b)
			}
		}
	})
	t.Run("https and http/2", func(t *testing.T) {
		h, b := curl(t, "--http2", "--cacert", certFile, "--resolve", "localhost:"+tlsPort+":127.0.0.1",
			"-r", "6-", "-w", "[%{http_version}]", "https://localhost:"+tlsPort+"/small.txt")
		has(t, h, "HTTP/2 206", "content-range: bytes 6-11/12")
		if b != "world\n[2]" {
			t.Errorf("body %q", b)
		}
	})
}

package web

import (
	"net/http"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		raw        string
		show       bool
		clean, rel string
		dir        bool
		status     int
	}{
		{raw: "/", clean: "/", rel: "", dir: true},
		{raw: "/index.html", clean: "/index.html", rel: "index.html"},
		{raw: "/a/b/", clean: "/a/b/", rel: "a/b", dir: true},
		{raw: "/a//b", clean: "/a/b", rel: "a/b"},
		{raw: "//", clean: "/", rel: "", dir: true},
		{raw: "/./a/./b", clean: "/a/b", rel: "a/b"},
		{raw: "/a/.", clean: "/a/", rel: "a", dir: true},
		{raw: "/sp%20ace.txt", clean: "/sp ace.txt", rel: "sp ace.txt"},
		{raw: "/%C3%BC.txt", clean: "/ü.txt", rel: "ü.txt"},
		{raw: "/a%2Fb", clean: "/a/b", rel: "a/b"},
		{raw: "/...", status: 404}, // a dotfile named "..."
		{raw: "/a...b", clean: "/a...b", rel: "a...b"},
		{raw: "/%252e%252e/x", clean: "/%2e%2e/x", rel: "%2e%2e/x"}, // decoded once only
		// Escapes out of the root.
		{raw: "/..", status: 400},
		{raw: "/../etc/passwd", status: 400},
		{raw: "/a/../../etc/passwd", status: 400},
		{raw: "/a/..", status: 400},
		{raw: "/%2e%2e/etc/passwd", status: 400},
		{raw: "/%2E%2E%2Fetc%2Fpasswd", status: 400},
		{raw: "/.%2e/x", status: 400},
		{raw: "/a%2F..%2F..%2Fx", status: 400},
		{raw: "/..\\..\\x", status: 400},
		{raw: "/a%5c..%5cx", status: 400},
		{raw: "/a\\b", status: 400},
		{raw: "/a%00.html", status: 400},
		{raw: "/a\x00b", status: 400},
		{raw: "/a%0d%0aSet-Cookie:x", status: 400},
		{raw: "/a%7f", status: 400},
		// Malformed.
		{raw: "", status: 400},
		{raw: "a/b", status: 400},
		{raw: "*", status: 400},
		{raw: "/%", status: 400},
		{raw: "/%4", status: 400},
		{raw: "/%zz", status: 400},
		// Dotfiles.
		{raw: "/.env", status: 404},
		{raw: "/.git/config", status: 404},
		{raw: "/a/.htaccess", status: 404},
		{raw: "/%2egit/config", status: 404},
		{raw: "/.git/config", show: true, clean: "/.git/config", rel: ".git/config"},
		{raw: "/.well-known/acme-challenge/x", clean: "/.well-known/acme-challenge/x", rel: ".well-known/acme-challenge/x"},
		{raw: "/.well-known/.x", status: 404},
		{raw: "/..", show: true, status: 400},
	}
	for _, tt := range tests {
		clean, rel, dir, status := cleanPath(tt.raw, tt.show)
		if status != tt.status {
			t.Errorf("cleanPath(%q) status = %d, want %d", tt.raw, status, tt.status)
			continue
		}
		if status != 0 {
			continue
		}
		if clean != tt.clean || rel != tt.rel || dir != tt.dir {
			t.Errorf("cleanPath(%q) = %q, %q, %v; want %q, %q, %v", tt.raw, clean, rel, dir, tt.clean, tt.rel, tt.dir)
		}
	}
}

func TestEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b/":       "/a/b/",
		"/sp ace/":    "/sp%20ace/",
		"/ü/":         "/%C3%BC/",
		"/a?b#c/":     "/a%3Fb%23c/",
		"/%2e/":       "/%252e/",
		"/\"<x>/":     "/%22%3Cx%3E/",
		"/a:b;c=d@e/": "/a:b;c=d@e/",
		"/line\r\nx/": "/line%0D%0Ax/",
	} {
		if got := escapePath(in); got != want {
			t.Errorf("escapePath(%q) = %q, want %q", in, got, want)
		}
		// What is escaped cleans back to itself.
		if clean, _, _, st := cleanPath(escapePath(in), true); st == 0 && clean != in {
			t.Errorf("cleanPath(escapePath(%q)) = %q", in, clean)
		}
	}
}

// FuzzCleanPath checks the guard's promises on any input: a path it
// accepts has no "..", ".", empty, NUL, control or backslash segment or
// byte, has a hidden segment only when dotfiles are shown, and cleans to
// itself.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/../x", "/%2e%2e/x", "/a%2f..%2fb", "/.git", "/.well-known/x", "//a//b/", "/a\\b", "/%00", "/a/./b/.", "/%", "/%%32%65"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, show bool) {
		clean, rel, dir, status := cleanPath(raw, show)
		switch status {
		case 0:
		case http.StatusBadRequest, http.StatusNotFound:
			return
		default:
			t.Fatalf("cleanPath(%q) status %d", raw, status)
		}
		if !strings.HasPrefix(clean, "/") {
			t.Fatalf("cleanPath(%q) clean = %q", raw, clean)
		}
		if strings.ContainsAny(rel, "\\\x00") || strings.HasPrefix(rel, "/") || strings.HasSuffix(rel, "/") {
			t.Fatalf("cleanPath(%q) rel = %q", raw, rel)
		}
		for _, c := range []byte(rel) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("cleanPath(%q) rel = %q has a control byte", raw, rel)
			}
		}
		if rel != "" {
			for seg := range strings.SplitSeq(rel, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("cleanPath(%q) rel = %q has segment %q", raw, rel, seg)
				}
				if seg[0] == '.' && !show && seg != wellKnown {
					t.Fatalf("cleanPath(%q) rel = %q shows a dotfile", raw, rel)
				}
			}
		}
		want := "/" + rel
		if dir && rel != "" {
			want += "/"
		}
		if clean != want {
			t.Fatalf("cleanPath(%q) clean = %q, rel = %q, dir = %v", raw, clean, rel, dir)
		}
		// The canonical form is stable once escaped again.
		c2, r2, d2, s2 := cleanPath(escapePath(clean), show)
		if s2 != 0 || c2 != clean || r2 != rel || d2 != dir {
			t.Fatalf("cleanPath(escapePath(%q)) = %q %q %v %d", clean, c2, r2, d2, s2)
		}
	})
}

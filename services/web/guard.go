package web

import (
	"net/http"
	"strings"
)

// wellKnown is the one dot folder served while dotfiles are hidden
// (RFC 8615): ACME challenges and security.txt live there.
const wellKnown = ".well-known"

// cleanPath turns the path of a request target (still percent-encoded,
// without the query) into a path relative to the web root that cannot leave
// it. rel is "" for the root itself and otherwise segments joined by "/"
// with no empty, "." or ".." segment; dir reports a trailing slash; clean is
// "/" + rel with that slash, the canonical form of the path.
//
// status is 0 for a good path, 400 for one no browser sends (no leading
// slash, a bad %-escape, a ".." segment, a NUL byte, a backslash or another
// control character, encoded or not) and 404 for a hidden dotfile. Refusing
// ".." instead of resolving it keeps the rule simple: browsers resolve dot
// segments before they send a request, so only crafted requests have any.
func cleanPath(raw string, showDotfiles bool) (clean, rel string, dir bool, status int) {
	if raw == "" || raw[0] != '/' {
		return "", "", false, http.StatusBadRequest
	}
	p := raw
	if strings.IndexByte(raw, '%') >= 0 {
		var ok bool
		if p, ok = unescapePath(raw); !ok {
			return "", "", false, http.StatusBadRequest
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", "", false, http.StatusBadRequest
		}
	}
	dir = strings.HasSuffix(p, "/")
	// Fast path: nothing to clean.
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p, strings.TrimSuffix(p[1:], "/"), dir, 0
	}
	b := make([]byte, 0, len(p)+1)
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch {
		case seg == "" || seg == ".":
			continue
		case seg == "..":
			return "", "", false, http.StatusBadRequest
		case seg[0] == '.' && !showDotfiles && seg != wellKnown:
			return "", "", false, http.StatusNotFound
		}
		b = append(b, '/')
		b = append(b, seg...)
	}
	if len(b) == 0 {
		// "//" and "/./" name the root, a directory.
		return "/", "", true, 0
	}
	rel = string(b[1:])
	if strings.HasSuffix(p, "/.") {
		dir = true
	}
	if dir {
		b = append(b, '/')
	}
	return string(b), rel, dir, 0
}

// unescapePath decodes %XX escapes; ok is false for a malformed escape.
func unescapePath(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// escapePath percent-encodes a slash-separated path for a Location header
// or a link: everything but unreserved characters, "/" and a few safe
// sub-delimiters.
func escapePath(p string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if isPathSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isPathSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~/!$&'()*+,;=:@", c) >= 0
}

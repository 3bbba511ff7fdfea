package web

import (
	"bytes"
	"net/http"
)

// head is a parsed HTTP/1.x request head. Its slices point into the
// connection's read buffer and are valid until the next read.
type head struct {
	method, target []byte
	minor          int // HTTP/1.minor

	host                               bool
	connClose, connKeepAlive           bool
	contentLength                      int64 // -1 when absent
	chunked                            bool  // a Transfer-Encoding was sent
	ifMatch, ifNoneMatch, ifRange      []byte
	ifModifiedSince, ifUnmodifiedSince []byte
	rangeSpec, acceptEncoding          []byte
	referer, userAgent                 []byte
	rangeTwice                         bool
	fields                             int
}

// maxHeaderFields bounds the header fields of one request.
const maxHeaderFields = 100

// findHeadEnd returns the length of the request head at the start of b,
// up to and including the empty line that ends it, or -1 when b does not
// hold a whole head. from is how much of b was searched before (the search
// resumes a little before it), so a head arriving byte by byte costs
// linear time.
func findHeadEnd(b []byte, from int) int {
	i := max(from-2, 0)
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
		if i+1 >= len(b) {
			return -1
		}
	}
}

// skipEmptyLines returns how many bytes of empty lines begin b: a server
// ignores empty lines before a request line (RFC 9112 section 2.2).
func skipEmptyLines(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\n' || (b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n')) {
		if b[i] == '\r' {
			i++
		}
		i++
	}
	return i
}

// parseHead parses the whole request head b (as found by findHeadEnd) into
// h. It returns 0, or the status of the answer to a bad head: 400, 414
// (target longer than maxURI), 431 (too many fields) or 505.
func parseHead(b []byte, h *head, maxURI int) int {
	*h = head{contentLength: -1}
	line, rest, ok := nextLine(b)
	if !ok {
		return http.StatusBadRequest
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return http.StatusBadRequest
	}
	h.method = line[:sp]
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp < 0 {
		return http.StatusBadRequest
	}
	if sp > maxURI {
		return http.StatusRequestURITooLong
	}
	h.target = line[:sp]
	if sp == 0 {
		return http.StatusBadRequest
	}
	for _, c := range h.target {
		if c <= ' ' || c == 0x7f || c == '#' {
			return http.StatusBadRequest
		}
	}
	switch v := line[sp+1:]; {
	case string(v) == "HTTP/1.1":
		h.minor = 1
	case string(v) == "HTTP/1.0":
		h.minor = 0
	case len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]):
		return http.StatusHTTPVersionNotSupported
	default:
		return http.StatusBadRequest
	}
	for {
		line, rest, ok = nextLine(rest)
		if !ok {
			return http.StatusBadRequest
		}
		if len(line) == 0 {
			break
		}
		if status := h.field(line); status != 0 {
			return status
		}
	}
	if h.minor == 1 && !h.host {
		return http.StatusBadRequest // RFC 9112 section 3.2
	}
	if h.chunked && h.contentLength >= 0 {
		return http.StatusBadRequest // RFC 9112 section 6.1: a smuggling attempt
	}
	return 0
}

// nextLine splits the first line off b, without its CRLF or LF. ok is
// false when b has no line end or the line holds a bare CR.
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, rest, true
}

// field parses one header field line into h.
func (h *head) field(line []byte) int {
	h.fields++
	if h.fields > maxHeaderFields {
		return http.StatusRequestHeaderFieldsTooLarge
	}
	colon := bytes.IndexByte(line, ':')
	// No colon, an empty name, whitespace before the colon or a line
	// starting with whitespace (obsolete line folding) are all errors.
	if colon <= 0 || !isToken(line[:colon]) {
		return http.StatusBadRequest
	}
	name, v := line[:colon], trimOWS(line[colon+1:])
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return http.StatusBadRequest
		}
	}
	switch len(name) {
	case 4:
		if lowerEq(name, "host") {
			if h.host {
				return http.StatusBadRequest
			}
			h.host = true
		}
	case 5:
		if lowerEq(name, "range") {
			h.rangeTwice = h.rangeSpec != nil
			h.rangeSpec = v
		}
	case 7:
		if lowerEq(name, "referer") {
			h.referer = v
		}
	case 8:
		switch {
		case lowerEq(name, "if-match"):
			h.ifMatch = joinList(h.ifMatch, v)
		case lowerEq(name, "if-range"):
			h.ifRange = v
		}
	case 10:
		switch {
		case lowerEq(name, "connection"):
			h.connectionTokens(v)
		case lowerEq(name, "user-agent"):
			h.userAgent = v
		}
	case 13:
		if lowerEq(name, "if-none-match") {
			h.ifNoneMatch = joinList(h.ifNoneMatch, v)
		}
	case 14:
		if lowerEq(name, "content-length") {
			n, ok := parseDigits(string(v))
			if !ok || (h.contentLength >= 0 && h.contentLength != n) {
				return http.StatusBadRequest
			}
			h.contentLength = n
		}
	case 15:
		if lowerEq(name, "accept-encoding") {
			h.acceptEncoding = joinList(h.acceptEncoding, v)
		}
	case 17:
		switch {
		case lowerEq(name, "if-modified-since"):
			if h.ifModifiedSince == nil {
				h.ifModifiedSince = v
			}
		case lowerEq(name, "transfer-encoding"):
			h.chunked = true
		}
	case 19:
		if lowerEq(name, "if-unmodified-since") && h.ifUnmodifiedSince == nil {
			h.ifUnmodifiedSince = v
		}
	}
	return 0
}

// connectionTokens notes the close and keep-alive options of a Connection
// field.
func (h *head) connectionTokens(v []byte) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = trimOWS(tok)
		switch {
		case len(tok) == 5 && lowerEq(tok, "close"):
			h.connClose = true
		case len(tok) == 10 && lowerEq(tok, "keep-alive"):
			h.connKeepAlive = true
		}
	}
}

// joinList appends a repeated list field's value to the earlier ones
// (RFC 9110 section 5.3).
func joinList(old, v []byte) []byte {
	if old == nil {
		return v
	}
	out := make([]byte, 0, len(old)+2+len(v))
	out = append(out, old...)
	out = append(out, ", "...)
	return append(out, v...)
}

// lowerEq reports whether b equals the lower-case ASCII s, ignoring case.
func lowerEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether b is a non-empty token (RFC 9110 section 5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

// tokenChar marks the characters of tokens; it is never written after
// initialization.
var tokenChar = func() [128]bool {
	var t [128]bool
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// splitTarget returns the path and query of a request target in origin
// form ("/p?q") or absolute form ("http://host/p?q", RFC 9112 section
// 3.2.2). Other forms return a path not starting with "/", which the path
// guard refuses.
func splitTarget(t string) (path, query string, hasQuery bool) {
	if len(t) > 0 && t[0] != '/' {
		for _, scheme := range []string{"http://", "https://"} {
			if len(t) >= len(scheme) && lowerEq([]byte(t[:len(scheme)]), scheme) {
				rest := t[len(scheme):]
				if i := indexAny2(rest, '/', '?'); i >= 0 {
					t = rest[i:]
					if t[0] == '?' {
						t = "/" + t
					}
				} else {
					t = "/"
				}
				break
			}
		}
	}
	for i := 0; i < len(t); i++ {
		if t[i] == '?' {
			return t[:i], t[i+1:], true
		}
	}
	return t, "", false
}

func indexAny2(s string, a, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == a || s[i] == b {
			return i
		}
	}
	return -1
}

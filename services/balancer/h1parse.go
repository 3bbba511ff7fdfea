package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
)

// This file parses HTTP/1.x message heads (RFC 9112) strictly, without
// allocating: the fields are slices of the bytes read. It refuses what a
// proxy must not pass on: conflicting framing (request smuggling), folded
// or malformed header lines, and control characters.

// httpError is a request the balancer answers itself with code.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

var (
	errHeadTooLarge = &httpError{431, "request header fields too large"}
	errBadRequest   = &httpError{400, "malformed request"}
	errBadResponse  = &httpError{502, "malformed response header"}
)

// field is one header line's name and value.
type field struct{ name, value []byte }

// head is a parsed request or response head.
type head struct {
	raw    []byte // the whole head, up to and including the empty line
	method []byte // request: method; response: nil
	target []byte // request: request-target as sent
	proto  []byte // "HTTP/1.1" or "HTTP/1.0"
	status int    // response status code
	reason []byte
	fields []field

	minor          int   // 0 or 1: HTTP/1.minor
	isHead         bool  // request method HEAD (kept: method aliases a buffer)
	contentLength  int64 // -1 when absent
	chunked        bool
	connClose      bool // Connection: close, or HTTP/1.0 without keep-alive
	connKeepAlive  bool // Connection: keep-alive
	upgrade        bool // Connection: upgrade with an Upgrade header
	expectContinue bool
	hosts          int
	host           []byte
	connOptions    [][]byte // other field names listed in Connection: hop-by-hop too
}

// readHead reads one message head from br: the bytes up to and including
// the first empty line, at most max bytes. Empty lines before a request
// are skipped (RFC 9112 section 2.2). The result aliases br's buffer when
// the head fits in it, else spill, and is valid until br is read again.
// The caller discards len(result) bytes from br when the head was in br's
// buffer (inBuf).
func readHead(br *bufio.Reader, max int, spill *[]byte) (h []byte, inBuf bool, err error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, false, err
		}
		if b[0] != '\r' && b[0] != '\n' {
			break
		}
		br.Discard(1)
	}
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			if i+4 > max {
				return nil, false, errHeadTooLarge
			}
			return buf[:i+4], true, nil
		}
		if len(buf) >= br.Size() {
			break // longer than the buffer: gather it in spill
		}
		if len(buf) > max {
			return nil, false, errHeadTooLarge
		}
		if _, err := br.Peek(len(buf) + 1); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > 0 && isEOF(err) {
				return nil, false, errBadRequest
			}
			return nil, false, err
		}
	}
	s := (*spill)[:0]
	for {
		line, err := br.ReadSlice('\n')
		s = append(s, line...)
		if len(s) > max {
			*spill = s
			return nil, false, errHeadTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			*spill = s
			return nil, false, errBadRequest
		}
		if bytes.HasSuffix(s, crlfcrlf) {
			*spill = s
			return s, false, nil
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

var crlfcrlf = []byte("\r\n\r\n")

// parseRequestHead parses raw (a whole head from readHead) into h.
func parseRequestHead(raw []byte, h *head) error {
	*h = head{raw: raw, fields: h.fields[:0], connOptions: h.connOptions[:0], contentLength: -1}
	line, rest, ok := cutLine(raw)
	if !ok {
		return errBadRequest
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest
	}
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp2 <= sp1+1 {
		return errBadRequest
	}
	h.method, h.target, h.proto = line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !isToken(h.method) || !validTarget(h.target) {
		return errBadRequest
	}
	h.isHead = string(h.method) == "HEAD"
	switch string(h.proto) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		if bytes.HasPrefix(h.proto, []byte("HTTP/")) && len(h.proto) == 8 && h.proto[6] == '.' {
			return &httpError{505, "HTTP version not supported"}
		}
		return errBadRequest
	}
	if err := parseFields(rest, h, false); err != nil {
		return err
	}
	if h.minor == 1 && h.hosts != 1 {
		return &httpError{400, "a request needs exactly one Host header"}
	}
	if h.hosts > 1 {
		return errBadRequest
	}
	if h.chunked && h.minor == 0 {
		return &httpError{400, "chunked transfer coding in HTTP/1.0"}
	}
	if h.minor == 0 && !h.connKeepAlive {
		h.connClose = true
	}
	return nil
}

// parseResponseHead parses a backend's response head into h.
func parseResponseHead(raw []byte, h *head) error {
	*h = head{raw: raw, fields: h.fields[:0], connOptions: h.connOptions[:0], contentLength: -1}
	line, rest, ok := cutLine(raw)
	if !ok || len(line) < 12 || line[8] != ' ' {
		return errors.New("malformed status line")
	}
	h.proto = line[:8]
	switch string(h.proto) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		return errors.New("not an HTTP/1.x response")
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return errors.New("malformed status code")
		}
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if h.status < 100 || (len(line) > 12 && line[12] != ' ') {
		return errors.New("malformed status line")
	}
	if len(line) > 13 {
		h.reason = line[13:]
	}
	if err := parseFields(rest, h, true); err != nil {
		return err
	}
	if h.minor == 0 && !h.connKeepAlive {
		h.connClose = true
	}
	return nil
}

// cutLine splits b at the first CRLF. A bare LF is malformed.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// parseFields parses header lines up to the empty line and records the
// framing headers in h.
func parseFields(b []byte, h *head, response bool) error {
	bad := errBadRequest
	if response {
		bad = errBadResponse
	}
	sawCL, sawTE := false, false
	for {
		line, rest, ok := cutLine(b)
		if !ok {
			return bad
		}
		b = rest
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return bad // includes obs-fold lines, which start with a space
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return bad
			}
		}
		h.fields = append(h.fields, field{name, value})
		switch {
		case equalFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok || (sawCL && n != h.contentLength) {
				return bad
			}
			sawCL, h.contentLength = true, n
		case equalFold(name, "Transfer-Encoding"):
			if sawTE || !equalFold(value, "chunked") {
				if response {
					return bad
				}
				return &httpError{501, "unsupported transfer coding"}
			}
			sawTE, h.chunked = true, true
		case equalFold(name, "Host"):
			h.hosts++
			h.host = value
		case equalFold(name, "Connection"):
			forEachToken(value, func(t []byte) {
				switch {
				case equalFold(t, "close"):
					h.connClose = true
				case equalFold(t, "keep-alive"):
					h.connKeepAlive = true
				case equalFold(t, "upgrade"):
					h.upgrade = true
				default:
					h.connOptions = append(h.connOptions, t)
				}
			})
		case equalFold(name, "Expect"):
			if equalFold(value, "100-continue") {
				h.expectContinue = true
			}
		}
	}
	if sawCL && sawTE {
		// RFC 9112 section 6.3: a message with both ought to be handled as
		// an error; it is the classic request-smuggling vector.
		if response {
			return bad
		}
		return &httpError{400, "both Content-Length and Transfer-Encoding"}
	}
	if h.upgrade && h.get("Upgrade") == nil {
		h.upgrade = false
	}
	return nil
}

// get returns the value of the first field name, or nil.
func (h *head) get(name string) []byte {
	for _, f := range h.fields {
		if equalFold(f.name, name) {
			return f.value
		}
	}
	return nil
}

// connOption reports whether name was listed in the Connection header,
// which makes it hop-by-hop (RFC 9110 section 7.6.1).
func (h *head) connOption(name []byte) bool {
	for _, o := range h.connOptions {
		if len(o) == len(name) && equalFold(name, string(o)) {
			return true
		}
	}
	return false
}

// hopByHop reports whether a field is about one connection only and is
// not forwarded (RFC 9110 section 7.6.1), or is one the balancer sets.
func hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "TE")
	case 7:
		return equalFold(name, "Trailer") || equalFold(name, "Upgrade")
	case 10:
		return equalFold(name, "Connection") || equalFold(name, "Keep-Alive")
	case 16:
		return equalFold(name, "Proxy-Connection")
	case 17:
		return equalFold(name, "Transfer-Encoding")
	case 19:
		return equalFold(name, "Proxy-Authorization")
	}
	return false
}

func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
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

func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if t = trimOWS(t); len(t) > 0 {
			fn(t)
		}
	}
}

// equalFold is ASCII case-insensitive equality of b and s.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if c|0x20 != d|0x20 || c|0x20 < 'a' || c|0x20 > 'z' {
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-32] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validTarget accepts origin-form ("/path?q"), absolute-form and "*"
// targets of visible ASCII only.
func validTarget(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return b[0] == '/' || (len(b) == 1 && b[0] == '*') || bytes.HasPrefix(b, []byte("http://")) || bytes.HasPrefix(b, []byte("https://"))
}

// chunkSize parses a chunk-size line (without CRLF), ignoring chunk
// extensions.
func chunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

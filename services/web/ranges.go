package web

import (
	"net/http"
	"strconv"
	"strings"
)

// byteRange is one satisfiable range of a representation.
type byteRange struct {
	start, length int64
}

// contentRange formats the Content-Range value of r in a representation of
// size bytes.
func (r byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.start+r.length-1, 10) +
		"/" + strconv.FormatInt(size, 10)
}

// maxRanges is the most ranges one request may ask for; more are answered
// with the whole representation, as are ranges that add up to more than it
// (overlapping ranges would otherwise multiply the bytes sent).
const maxRanges = 32

// parseRange parses a Range header field (RFC 9110 section 14.2) for a
// representation of size bytes. status is 0 to send the whole
// representation (no Range, a unit other than bytes, a malformed value or
// too many ranges), 206 with the ranges, or 416 when no range overlaps.
func parseRange(spec string, size int64) ([]byteRange, int) {
	if spec == "" {
		return nil, 0
	}
	unit, set, ok := strings.Cut(spec, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return nil, 0
	}
	var out []byteRange
	var total int64
	valid := 0
	for item := range strings.SplitSeq(set, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue // empty list elements are allowed (RFC 9110 section 5.6.1)
		}
		valid++
		if valid > maxRanges {
			return nil, 0
		}
		first, last, ok := strings.Cut(item, "-")
		if !ok {
			return nil, 0
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var rg byteRange
		if first == "" {
			// Suffix range: the last n bytes.
			n, ok := parseDigits(last)
			if !ok {
				return nil, 0
			}
			if n == 0 || size == 0 {
				continue // unsatisfiable
			}
			n = min(n, size)
			rg = byteRange{size - n, n}
		} else {
			start, ok := parseDigits(first)
			if !ok {
				return nil, 0
			}
			end := size - 1
			if last != "" {
				e, ok := parseDigits(last)
				if !ok || e < start {
					return nil, 0
				}
				end = min(e, size-1)
			}
			if start >= size {
				continue // unsatisfiable
			}
			rg = byteRange{start, end - start + 1}
		}
		total += rg.length
		out = append(out, rg)
	}
	if valid == 0 {
		return nil, 0
	}
	if len(out) == 0 {
		return nil, http.StatusRequestedRangeNotSatisfiable
	}
	if total > size {
		return nil, 0
	}
	return out, http.StatusPartialContent
}

// parseDigits parses a non-empty run of ASCII digits that fits in an int64.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

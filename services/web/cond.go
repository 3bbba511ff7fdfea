package web

import (
	"net/http"
	"strings"
)

// checkPreconditions evaluates the conditional header fields of r against
// rp in the order of RFC 9110 section 13.2.2. It returns 0 to answer
// normally, 304 (Not Modified) or 412 (Precondition Failed).
func checkPreconditions(r *request, rp *rep) int {
	// Step 1 and 2: If-Match, else If-Unmodified-Since.
	if r.ifMatch != "" {
		if !etagListMatches(r.ifMatch, rp.etag, true) {
			return http.StatusPreconditionFailed
		}
	} else if r.ifUnmodifiedSince != "" {
		if t, ok := parseHTTPDate(r.ifUnmodifiedSince); ok && rp.modSec > t {
			return http.StatusPreconditionFailed
		}
	}
	// Step 3 and 4: If-None-Match, else If-Modified-Since. Only GET and
	// HEAD reach here, so a match is 304.
	if r.ifNoneMatch != "" {
		if etagListMatches(r.ifNoneMatch, rp.etag, false) {
			return http.StatusNotModified
		}
	} else if r.ifModifiedSince != "" {
		if t, ok := parseHTTPDate(r.ifModifiedSince); ok && rp.modSec <= t {
			return http.StatusNotModified
		}
	}
	return 0
}

// ifRangeMatches reports whether the If-Range value v (an entity tag or a
// date) still names rp, so the Range applies (RFC 9110 section 13.1.5).
// Only a strong tag or an exact Last-Modified date match.
func ifRangeMatches(v string, rp *rep) bool {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		return !strings.HasPrefix(v, "W/") && v == rp.etag
	}
	t, ok := parseHTTPDate(v)
	return ok && t == rp.modSec
}

// etagListMatches reports whether the If-Match or If-None-Match list holds
// etag or "*". strong comparison (If-Match) never matches weak tags; weak
// comparison (If-None-Match) ignores the W/ prefix.
func etagListMatches(list, etag string, strong bool) bool {
	for list != "" {
		list = strings.TrimLeft(list, " \t,")
		if list == "" {
			break
		}
		if list[0] == '*' {
			return true
		}
		weak := false
		if strings.HasPrefix(list, "W/") {
			weak = true
			list = list[2:]
		}
		if list == "" || list[0] != '"' {
			return false // malformed: match nothing
		}
		end := strings.IndexByte(list[1:], '"')
		if end < 0 {
			return false
		}
		tag := list[:end+2]
		list = list[end+2:]
		if tag == etag && !(strong && weak) {
			return true
		}
	}
	return false
}

// parseHTTPDate parses an HTTP date in any of the three formats of RFC 9110
// section 5.6.7 and returns it in Unix seconds.
func parseHTTPDate(v string) (int64, bool) {
	t, err := http.ParseTime(strings.TrimSpace(v))
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip: it
// names gzip (or x-gzip, or *) with a q-value above 0 (RFC 9110 section
// 12.5.3).
func acceptsGzip(ae string) bool {
	if ae == "" {
		return false
	}
	star, gzip := false, -1
	for item := range strings.SplitSeq(ae, ",") {
		name, params, _ := strings.Cut(item, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		ok := qNonZero(params)
		switch name {
		case "gzip", "x-gzip":
			if ok {
				gzip = 1
			} else {
				gzip = 0
			}
		case "*":
			star = ok
		}
	}
	if gzip >= 0 {
		return gzip == 1
	}
	return star
}

// qNonZero reports whether the parameters of an Accept-Encoding item have
// no q, or a q above 0.
func qNonZero(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		v = strings.TrimRight(v, "0")
		return v != "" && v != "0." && v != "0" && v != "."
	}
	return true
}

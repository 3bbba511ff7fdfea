package web

import (
	"net/http"
	"testing"
	"time"
)

func TestCheckPreconditions(t *testing.T) {
	mod := time.Date(2026, 11, 22, 4, 20, 8, 0, time.UTC)
	rp := &rep{etag: `"abc"`, modSec: mod.Unix()}
	date := func(d time.Duration) string { return mod.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name string
		r    request
		want int
	}{
		{"none", request{}, 0},
		{"If-None-Match match", request{ifNoneMatch: `"abc"`}, 304},
		{"If-None-Match weak match", request{ifNoneMatch: `W/"abc"`}, 304},
		{"If-None-Match list", request{ifNoneMatch: `"x", "abc"`}, 304},
		{"If-None-Match star", request{ifNoneMatch: `*`}, 304},
		{"If-None-Match other", request{ifNoneMatch: `"x"`}, 0},
		{"If-None-Match malformed", request{ifNoneMatch: `abc`}, 0},
		{"If-Modified-Since same", request{ifModifiedSince: date(0)}, 304},
		{"If-Modified-Since later", request{ifModifiedSince: date(time.Hour)}, 304},
		{"If-Modified-Since earlier", request{ifModifiedSince: date(-time.Second)}, 0},
		{"If-Modified-Since bad", request{ifModifiedSince: "yesterday"}, 0},
		{"If-Modified-Since RFC 850", request{ifModifiedSince: "Sunday, 22-Nov-26 04:20:08 GMT"}, 304},
		{"If-Modified-Since asctime", request{ifModifiedSince: "Sun Nov 22 04:20:08 2026"}, 304},
		{"If-None-Match wins over IMS", request{ifNoneMatch: `"x"`, ifModifiedSince: date(time.Hour)}, 0},
		{"If-Match match", request{ifMatch: `"abc"`}, 0},
		{"If-Match star", request{ifMatch: `*`}, 0},
		{"If-Match weak never", request{ifMatch: `W/"abc"`}, 412},
		{"If-Match other", request{ifMatch: `"x"`}, 412},
		{"If-Unmodified-Since same", request{ifUnmodifiedSince: date(0)}, 0},
		{"If-Unmodified-Since earlier", request{ifUnmodifiedSince: date(-time.Second)}, 412},
		{"If-Unmodified-Since bad", request{ifUnmodifiedSince: "x"}, 0},
		{"If-Match wins over IUS", request{ifMatch: `"abc"`, ifUnmodifiedSince: date(-time.Hour)}, 0},
		{"If-Match then If-None-Match", request{ifMatch: `"abc"`, ifNoneMatch: `"abc"`}, 304},
	}
	for _, tt := range tests {
		if got := checkPreconditions(&tt.r, rp); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestIfRange(t *testing.T) {
	mod := time.Date(2026, 11, 22, 4, 20, 8, 0, time.UTC)
	rp := &rep{etag: `"abc"`, modSec: mod.Unix()}
	for v, want := range map[string]bool{
		`"abc"`:                     true,
		`W/"abc"`:                   false,
		`"x"`:                       false,
		mod.Format(http.TimeFormat): true,
		mod.Add(time.Second).Format(http.TimeFormat): false,
		"garbage": false,
	} {
		if got := ifRangeMatches(v, rp); got != want {
			t.Errorf("ifRangeMatches(%q) = %v", v, got)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"":                        false,
		"gzip":                    true,
		"GZIP":                    true,
		"gzip, deflate, br, zstd": true,
		"br;q=1.0, gzip;q=0.8":    true,
		"gzip;q=0":                false,
		"gzip;q=0.000":            false,
		"gzip; q=0.001":           true,
		"x-gzip":                  true,
		"*":                       true,
		"*;q=0":                   false,
		"*, gzip;q=0":             false,
		"identity":                false,
		"deflate, br":             false,
		"gzipfoo":                 false,
	} {
		if got := acceptsGzip(ae); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", ae, got, want)
		}
	}
}

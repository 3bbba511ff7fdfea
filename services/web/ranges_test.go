package web

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		spec   string
		size   int64
		want   []byteRange
		status int
	}{
		{"", 100, nil, 0},
		{"bytes=0-9", 100, []byteRange{{0, 10}}, 206},
		{"bytes=90-", 100, []byteRange{{90, 10}}, 206},
		{"bytes=-10", 100, []byteRange{{90, 10}}, 206},
		{"bytes=-200", 100, []byteRange{{0, 100}}, 206},
		{"bytes=90-200", 100, []byteRange{{90, 10}}, 206},
		{"bytes=0-0,-1", 100, []byteRange{{0, 1}, {99, 1}}, 206},
		{"Bytes = 0-1 , 5-6", 100, []byteRange{{0, 2}, {5, 2}}, 206},
		{"bytes=0-1,,5-6", 100, []byteRange{{0, 2}, {5, 2}}, 206},
		{"bytes=0-1,200-300", 100, []byteRange{{0, 2}}, 206}, // unsatisfiable ones are left out
		// Unsatisfiable.
		{"bytes=100-", 100, nil, 416},
		{"bytes=100-200,300-", 100, nil, 416},
		{"bytes=-0", 100, nil, 416},
		{"bytes=0-", 0, nil, 416},
		{"bytes=-5", 0, nil, 416},
		// Ignored: malformed, other units, too much.
		{"bytes=5-1", 100, nil, 0},
		{"bytes=a-b", 100, nil, 0},
		{"bytes=1", 100, nil, 0},
		{"bytes=--1", 100, nil, 0},
		{"bytes=", 100, nil, 0},
		{"bytes=,", 100, nil, 0},
		{"items=0-1", 100, nil, 0},
		{"bytes 0-1", 100, nil, 0},
		{"bytes=0-99999999999999999999", 100, nil, 0},
		{"bytes=0-60,40-99", 100, nil, 0}, // overlapping, more than the whole
		{"bytes=" + strings.Repeat("0-0,", maxRanges) + "0-0", 1000, nil, 0},
	}
	for _, tt := range tests {
		got, status := parseRange(tt.spec, tt.size)
		if status != tt.status || !slices.Equal(got, tt.want) {
			t.Errorf("parseRange(%q, %d) = %v, %d; want %v, %d", tt.spec, tt.size, got, status, tt.want, tt.status)
		}
	}
}

func TestContentRange(t *testing.T) {
	if got := (byteRange{5, 10}).contentRange(100); got != "bytes 5-14/100" {
		t.Errorf("got %q", got)
	}
}

// FuzzParseRange checks that every range returned lies inside the
// representation and that they never add up to more than it.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-0,-1", "bytes=1-0", "bytes=,,"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, spec string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		got, status := parseRange(spec, size)
		switch status {
		case 0, 416:
			if got != nil {
				t.Fatalf("status %d with ranges %v", status, got)
			}
			return
		case 206:
		default:
			t.Fatalf("status %d", status)
		}
		if len(got) == 0 || len(got) > maxRanges {
			t.Fatalf("%d ranges", len(got))
		}
		var total int64
		for _, r := range got {
			if r.start < 0 || r.length <= 0 || r.start+r.length > size {
				t.Fatalf("range %v outside %d", r, size)
			}
			total += r.length
		}
		if total > size {
			t.Fatalf("ranges %v add up to more than %d", got, size)
		}
	})
}

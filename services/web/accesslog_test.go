package web

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendLogLine(t *testing.T) {
	var c clock
	st := c.at(time.Date(2026, 11, 22, 4, 20, 8, 0, time.UTC))
	tests := []struct {
		e    logEntry
		want string
	}{
		{logEntry{remote: "192.168.1.5", method: []byte("GET"), target: []byte("/index.html"), minor: 1, status: 200, bytes: 612,
			referer: []byte("http://x/"), agent: []byte("curl/7.88.1"), time: st},
			`192.168.1.5 - - [22/Nov/2026:04:20:08 +0000] "GET /index.html HTTP/1.1" 200 612 "http://x/" "curl/7.88.1"` + "\n"},
		{logEntry{remote: "10.0.0.1", method: []byte("HEAD"), target: []byte("/"), minor: 0, status: 304, time: st},
			`10.0.0.1 - - [22/Nov/2026:04:20:08 +0000] "HEAD / HTTP/1.0" 304 0 "-" "-"` + "\n"},
		{logEntry{remote: "::1", method: []byte("GET"), target: []byte("/a\"b\\c\x00\xff"), minor: 2, status: 404, bytes: 5,
			agent: []byte("evil\"\n127.0.0.1 - - fake"), time: st},
			`::1 - - [22/Nov/2026:04:20:08 +0000] "GET /a\x22b\x5Cc\x00\xFF HTTP/2.0" 404 5 "-" "evil\x22\x0A127.0.0.1 - - fake"` + "\n"},
		{logEntry{remote: "1.2.3.4", noRequestLine: true, status: 431, bytes: 40, time: st},
			`1.2.3.4 - - [22/Nov/2026:04:20:08 +0000] "-" 431 40 "-" "-"` + "\n"},
	}
	for _, tt := range tests {
		if got := string(appendLogLine(nil, &tt.e)); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	if string(st.date) != "Sun, 22 Nov 2026 04:20:08 GMT" {
		t.Errorf("date %q", st.date)
	}
	if c.at(time.Date(2026, 11, 22, 4, 20, 8, 999, time.UTC)) != st {
		t.Error("same second formatted again")
	}
}

// blockingWriter blocks every write until released.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

func TestAccessLogDropsWhenFull(t *testing.T) {
	w := blockingWriter{release: make(chan struct{})}
	cfg := Config{AccessLog: w, AccessLogBuffer: 1000}
	l, err := newAccessLog(&cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 99) + "\n")
	start := time.Now()
	for range 1000 {
		l.add(line) // never blocks, whatever the writer does
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("adding took %v", d)
	}
	// At most one batch is being written and the buffer holds 10 lines.
	if d := l.dropped.Load(); d < 1000-20 {
		t.Errorf("dropped %d of 1000", d)
	}
	close(w.release)
	l.close()
}

func TestAccessLogFileRotates(t *testing.T) {
	name := filepath.Join(t.TempDir(), "access.log")
	r, err := openRotatingFile(name, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := r.write([]byte(strings.Repeat(string(rune('a'+i)), 39) + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	r.close()
	cur, _ := os.ReadFile(name)
	old, _ := os.ReadFile(name + ".1")
	if len(cur) != 40 || cur[0] != 'e' || len(old) != 80 || old[0] != 'c' {
		t.Errorf("current %q, old %q", cur, old)
	}
}

func TestAccessLogOff(t *testing.T) {
	cfg := Config{NoAccessLog: true, AccessLog: io.Discard}
	if l, err := newAccessLog(&cfg, nil); l != nil || err != nil {
		t.Errorf("log %v, %v", l, err)
	}
}

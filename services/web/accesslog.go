package web

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stamp is the formatted forms of one second, shared by all connections:
// formatting a date per request would cost more than serving a small file.
type stamp struct {
	sec     int64
	date    []byte // "Sun, 22 Nov 2026 04:20:08 GMT" for the Date header
	logTime []byte // "22/Nov/2026:04:20:08 +0000" for the access log
}

// clock caches the stamp of the current second.
type clock struct {
	p atomic.Pointer[stamp]
}

// at returns the stamp of now's second.
func (c *clock) at(now time.Time) *stamp {
	sec := now.Unix()
	if st := c.p.Load(); st != nil && st.sec == sec {
		return st
	}
	t := time.Unix(sec, 0).UTC()
	st := &stamp{
		sec:     sec,
		date:    t.AppendFormat(nil, timeFormat),
		logTime: t.AppendFormat(nil, "02/Jan/2006:15:04:05 -0700"),
	}
	c.p.Store(st)
	return st
}

// logEntry is what one access log line says.
type logEntry struct {
	remote         string
	method, target []byte
	minor          int // HTTP/1.minor; 2 for HTTP/2
	status         int
	bytes          int64
	referer, agent []byte
	noRequestLine  bool // the request line was unreadable
	time           *stamp
}

// appendLogLine formats e in the combined log format of Apache and nginx:
//
//	1.2.3.4 - - [22/Nov/2026:04:20:08 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/7.88.1"
//
// Quotes, backslashes and bytes outside printable ASCII in the request,
// referer and user agent are written as \xHH, so a client cannot forge
// lines.
func appendLogLine(b []byte, e *logEntry) []byte {
	b = append(b, e.remote...)
	b = append(b, " - - ["...)
	b = append(b, e.time.logTime...)
	b = append(b, "] \""...)
	if e.noRequestLine {
		b = append(b, '-')
	} else {
		b = appendEscaped(b, e.method)
		b = append(b, ' ')
		b = appendEscaped(b, e.target)
		switch e.minor {
		case 0:
			b = append(b, " HTTP/1.0"...)
		case 1:
			b = append(b, " HTTP/1.1"...)
		default:
			b = append(b, " HTTP/2.0"...)
		}
	}
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, " \""...)
	b = appendField(b, e.referer)
	b = append(b, "\" \""...)
	b = appendField(b, e.agent)
	return append(b, "\"\n"...)
}

func appendField(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	return appendEscaped(b, v)
}

func appendEscaped(b, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// accessLog buffers access log lines and writes them from its own
// goroutine, so serving never waits for a slow log. The buffer is bounded:
// lines that do not fit are dropped and counted.
type accessLog struct {
	log     *slog.Logger
	out     io.Writer // nil for none
	file    *rotatingFile
	limit   int
	dropped atomic.Uint64

	mu   sync.Mutex
	buf  []byte
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// flushEvery is how often buffered lines are written at the latest.
const flushEvery = 200 * time.Millisecond

// newAccessLog opens the access log of cfg (with defaults); it returns nil
// when the log is off.
func newAccessLog(cfg *Config, log *slog.Logger) (*accessLog, error) {
	if cfg.NoAccessLog {
		return nil, nil
	}
	l := &accessLog{
		log:   log,
		out:   cfg.AccessLog,
		limit: cfg.AccessLogBuffer,
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if l.out == nil {
		l.out = os.Stdout
	}
	if cfg.AccessLogFile != "" {
		f, err := openRotatingFile(cfg.AccessLogFile, accessLogFileMax)
		if err != nil {
			return nil, err
		}
		l.file = f
	}
	go l.run()
	return l, nil
}

// add queues one line, or drops it when the buffer is full.
func (l *accessLog) add(line []byte) {
	l.mu.Lock()
	if len(l.buf)+len(line) > l.limit {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.buf = append(l.buf, line...)
	full := len(l.buf) >= l.limit/4
	l.mu.Unlock()
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// run writes the buffered lines until close.
func (l *accessLog) run() {
	defer close(l.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	var spare []byte
	var reported uint64
	for {
		stopping := false
		select {
		case <-l.kick:
		case <-t.C:
		case <-l.stop:
			stopping = true
		}
		l.mu.Lock()
		batch := l.buf
		l.buf = spare[:0]
		l.mu.Unlock()
		if len(batch) > 0 {
			l.write(batch)
		}
		spare = batch
		if d := l.dropped.Load(); d != reported {
			l.log.Warn("access log lines dropped: the log could not keep up", "dropped_total", d)
			reported = d
		}
		if stopping {
			return
		}
	}
}

func (l *accessLog) write(batch []byte) {
	if l.out != nil {
		if _, err := l.out.Write(batch); err != nil {
			l.log.Warn("writing the access log", "err", err)
		}
	}
	if l.file != nil {
		if err := l.file.write(batch); err != nil {
			l.log.Warn("writing the access log file", "file", l.file.path, "err", err)
		}
	}
}

// close writes what is buffered and stops the writer.
func (l *accessLog) close() {
	close(l.stop)
	<-l.done
	if l.file != nil {
		l.file.close()
	}
}

// rotatingFile appends to a file and renames it to <path>.1 when it grows
// beyond max bytes, so the log cannot fill the data partition.
type rotatingFile struct {
	path string
	max  int64
	f    *os.File
	size int64
}

func openRotatingFile(path string, max int64) (*rotatingFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening access log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening access log file: %w", err)
	}
	return &rotatingFile{path: path, max: max, f: f, size: fi.Size()}, nil
}

func (r *rotatingFile) write(b []byte) error {
	if r.size+int64(len(b)) > r.max && r.size > 0 {
		if err := r.rotate(); err != nil {
			return err
		}
	}
	n, err := r.f.Write(b)
	r.size += int64(n)
	return err
}

func (r *rotatingFile) rotate() error {
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("rotating access log: %w", err)
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("rotating access log: %w", err)
	}
	r.f.Close()
	r.f, r.size = f, 0
	return nil
}

func (r *rotatingFile) close() { r.f.Close() }

package mirror

import (
	"bufio"
	"net"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piimage/piimage/services/mirror/wire"
)

// countingConn counts the bytes a TCP connection carries (TLS included):
// the figure the status page and the benchmark call "on the wire".
type countingConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// writeTimeout bounds one flush of frames. A peer that is alive but slow
// (a replica busy writing a large tree) must not be dropped for it: dead
// peers are found by the heartbeat's read deadlines instead.
const writeTimeout = 2 * time.Minute

// frameWriter writes frames through a buffer. It is safe for concurrent
// use: a heartbeat may go out between the frames of a file.
type frameWriter struct {
	mu      sync.Mutex
	conn    net.Conn
	w       *bufio.Writer
	scratch []byte
	timeout time.Duration
	flushed time.Time // last time the buffer went out
	seq     uint64
}

func newFrameWriter(conn net.Conn, timeout time.Duration) *frameWriter {
	return &frameWriter{conn: conn, w: bufio.NewWriterSize(conn, 64<<10), timeout: timeout, flushed: time.Now()}
}

func (f *frameWriter) write(m wire.Msg) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scratch = wire.Append(f.scratch[:0], m)
	if f.w.Available() < len(f.scratch) {
		f.conn.SetWriteDeadline(time.Now().Add(f.timeout))
		f.flushed = time.Now()
	}
	_, err := f.w.Write(f.scratch)
	return err
}

func (f *frameWriter) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushLocked()
}

func (f *frameWriter) flushLocked() error {
	f.flushed = time.Now()
	if f.w.Buffered() == 0 {
		return nil
	}
	f.conn.SetWriteDeadline(time.Now().Add(f.timeout))
	return f.w.Flush()
}

// heartbeat sends a Ping when nothing went out for interval, until done
// is closed or a write fails.
func (f *frameWriter) heartbeat(interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		f.mu.Lock()
		var err error
		if time.Since(f.flushed) >= interval/2 {
			f.seq++
			f.scratch = wire.Append(f.scratch[:0], wire.Ping{Seq: f.seq})
			if _, err = f.w.Write(f.scratch); err == nil {
				err = f.flushLocked()
			}
		}
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// skipCompress lists name endings whose content is compressed already.
var skipCompress = strings.Fields(`.jpg .jpeg .png .gif .webp .avif .heic .ico
	.gz .tgz .bz2 .xz .zst .zip .7z .rar .br .lz4
	.mp3 .mp4 .m4a .m4v .mkv .mov .avi .webm .ogg .ogv .opus .flac
	.woff .woff2 .pdf .jar .apk .deb .rpm .squashfs .iso`)

// compressible reports whether a file's name suggests its data deflates.
func compressible(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	for _, s := range skipCompress {
		if ext == s {
			return false
		}
	}
	return true
}

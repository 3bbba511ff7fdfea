package web

import (
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// flushMore writes the buffered bytes (an answer's header) with MSG_MORE,
// so the kernel sends them in one segment with the file data that
// follows, as nginx's tcp_nopush does.
func (c *conn) flushMore(st *site) bool {
	if len(c.wbuf) == 0 {
		return true
	}
	if c.rc == nil {
		return c.flush(st)
	}
	c.extendWrite(c.clock(), st.cfg.WriteTimeout)
	b := c.wbuf
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := unix.SendmsgN(int(fd), b, nil, nil, unix.MSG_MORE|unix.MSG_NOSIGNAL)
			if n > 0 {
				b = b[n:]
			}
			switch {
			case err == unix.EAGAIN:
				return false
			case err == unix.EINTR:
			case err != nil:
				serr = err
				return true
			}
		}
		return true
	})
	c.wbuf = c.wbuf[:0]
	return err == nil && serr == nil
}

// sendFile writes n bytes of h at off to the connection with sendfile(2),
// extending the write deadline per chunk so a slow but live client can
// fetch large files while a stalled one times out.
func (c *conn) sendFile(st *site, h handle, off, n int64) (int64, error) {
	fh, ok := h.(*fdHandle)
	if !ok || c.rc == nil {
		return c.copyFile(st, h, off, n)
	}
	var sent int64
	for sent < n {
		c.extendWrite(time.Now(), st.cfg.WriteTimeout)
		chunk := min(n-sent, sendfileChunk)
		var serr error
		err := c.rc.Write(func(fd uintptr) bool {
			for chunk > 0 {
				m, err := unix.Sendfile(int(fd), fh.fd, &off, int(chunk))
				if m > 0 {
					sent += int64(m)
					chunk -= int64(m)
				}
				switch {
				case err == unix.EAGAIN:
					return false
				case err == unix.EINTR:
				case err != nil:
					serr = err
					return true
				case m == 0:
					serr = io.ErrUnexpectedEOF // the file shrank
					return true
				}
			}
			return true
		})
		if err != nil {
			return sent, err
		}
		if serr != nil {
			return sent, serr
		}
	}
	return sent, nil
}

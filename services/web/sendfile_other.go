//go:build !linux

package web

func (c *conn) sendFile(st *site, h handle, off, n int64) (int64, error) {
	return c.copyFile(st, h, off, n)
}

func (c *conn) flushMore(st *site) bool { return c.flush(st) }

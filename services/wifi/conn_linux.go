package wifi

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nlConn is a generic netlink socket, non-blocking and driven by the Go
// runtime's poller, so that a read deadline or Close wakes a blocked
// reader.
type nlConn struct {
	f   *os.File
	rc  syscall.RawConn
	seq atomic.Uint32
}

// requestTimeout bounds one request's wait for its answer.
const requestTimeout = 5 * time.Second

// dialGeneric opens a NETLINK_GENERIC socket with extended ACKs on.
func dialGeneric() (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("opening a generic netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding a generic netlink socket: %w", err)
	}
	// Best effort: older kernels lack them.
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	f := os.NewFile(uintptr(fd), "nl80211")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	c := &nlConn{f: f, rc: rc}
	c.seq.Store(uint32(time.Now().UnixNano()))
	return c, nil
}

func (c *nlConn) Close() error { return c.f.Close() }

// join subscribes the socket to a multicast group.
func (c *nlConn) join(group uint32) error {
	var err error
	cerr := c.rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, int(group))
	})
	return errors.Join(cerr, err)
}

func (c *nlConn) send(b []byte) error {
	var err error
	werr := c.rc.Write(func(fd uintptr) bool {
		err = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return err != unix.EAGAIN
	})
	return errors.Join(werr, err)
}

// recv reads one datagram, waiting (until the read deadline) for one.
func (c *nlConn) recv() ([]byte, error) {
	buf := make([]byte, 64<<10)
	var n int
	var err error
	rerr := c.rc.Read(func(fd uintptr) bool {
		n, _, err = unix.Recvfrom(int(fd), buf, 0)
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// request sends m (its Seq set here) and returns the generic netlink
// payloads of the answer: one message, or every part of a dump. A
// netlink error comes back as a *RequestError.
func (c *nlConn) request(m genlMsg) ([][]byte, error) {
	m.Seq = c.seq.Add(1)
	if err := c.send(m.marshal()); err != nil {
		return nil, err
	}
	c.f.SetReadDeadline(time.Now().Add(requestTimeout))
	defer c.f.SetReadDeadline(time.Time{})
	var out [][]byte
	for {
		b, err := c.recv()
		if err != nil {
			return nil, err
		}
		msgs, err := splitMessages(b)
		if err != nil {
			return nil, err
		}
		for _, msg := range msgs {
			if msg.Seq != m.Seq {
				continue
			}
			switch msg.Type {
			case nlmsgError:
				e, err := parseError(msg)
				if err != nil {
					return nil, err
				}
				if e.Errno != 0 {
					return nil, &RequestError{Errno: syscall.Errno(e.Errno), Msg: e.Msg}
				}
				return out, nil
			case nlmsgDone:
				// A dump's end; it carries the dump's error, if any.
				if len(msg.Data) >= 4 {
					if errno := -int32(native.Uint32(msg.Data)); errno > 0 {
						return nil, &RequestError{Errno: syscall.Errno(errno)}
					}
				}
				return out, nil
			}
			_, payload, err := genlPayload(msg)
			if err != nil {
				return nil, err
			}
			out = append(out, payload)
			if msg.Flags&nlmFMulti == 0 && m.Flags&nlmFAck == 0 {
				return out, nil
			}
		}
	}
}

// RequestError is the kernel's refusal of a request.
type RequestError struct {
	Errno syscall.Errno
	// Msg is the kernel's explanation (extended ACK), when it gave one.
	Msg string
}

func (e *RequestError) Error() string {
	if e.Msg != "" {
		return e.Errno.Error() + ": " + e.Msg
	}
	return e.Errno.Error()
}

func (e *RequestError) Unwrap() error { return e.Errno }

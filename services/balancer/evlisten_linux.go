package balancer

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenSocket opens a non-blocking listening TCP socket on addr the way
// net.Listen("tcp", addr) does: a wildcard address (":80", "0.0.0.0:80")
// gets a dual-stack IPv6 socket where the system has IPv6, SO_REUSEADDR is
// set, and the backlog is the system's somaxconn. The socket is not
// registered with the Go runtime's poller: the event loops own it.
func listenSocket(addr string) (int, *net.TCPAddr, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, nil, err
	}
	wildcard := ta.IP == nil || ta.IP.IsUnspecified()
	var fd int
	switch {
	case wildcard:
		fd, err = bindSocket(unix.AF_INET6, &unix.SockaddrInet6{Port: ta.Port})
		if err != nil {
			fd, err = bindSocket(unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port})
		}
	case ta.IP.To4() != nil:
		sa := &unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ta.IP.To4())
		fd, err = bindSocket(unix.AF_INET, sa)
	default:
		sa := &unix.SockaddrInet6{Port: ta.Port}
		copy(sa.Addr[:], ta.IP.To16())
		if ta.Zone != "" {
			ifi, zerr := net.InterfaceByName(ta.Zone)
			if zerr != nil {
				return -1, nil, zerr
			}
			sa.ZoneId = uint32(ifi.Index)
		}
		fd, err = bindSocket(unix.AF_INET6, sa)
	}
	if err != nil {
		return -1, nil, err
	}
	if err := unix.Listen(fd, backlog()); err != nil {
		unix.Close(fd)
		return -1, nil, os.NewSyscallError("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, nil, os.NewSyscallError("getsockname", err)
	}
	ap := sockaddrAddrPort(sa)
	return fd, net.TCPAddrFromAddrPort(ap), nil
}

func bindSocket(family int, sa unix.Sockaddr) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if family == unix.AF_INET6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	return fd, nil
}

// backlog is the listen queue length net.Listen would use.
func backlog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return unix.SOMAXCONN
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return unix.SOMAXCONN
	}
	return min(n, 1<<16-1)
}

// sockaddrAddrPort converts a socket address; an IPv4-mapped IPv6
// address comes out as IPv4, as net.Conn's RemoteAddr shows it.
func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr).Unmap()
		if ip.Is6() && a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				ip = ip.WithZone(ifi.Name)
			} else {
				ip = ip.WithZone(strconv.Itoa(int(a.ZoneId)))
			}
		}
		return netip.AddrPortFrom(ip, uint16(a.Port))
	}
	return netip.AddrPort{}
}

// backendSockaddr is the socket address of a backend "ip:port", or nil
// when the address is a host name (the event loops do not resolve names:
// such requests go to the goroutine engine, which dials through net).
func backendSockaddr(addr string) (unix.Sockaddr, int) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, 0
	}
	if a := ap.Addr(); a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Addr: a.Unmap().As4(), Port: int(ap.Port())}, unix.AF_INET
	}
	sa := &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
	if z := ap.Addr().Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return nil, 0
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return sa, unix.AF_INET6
}

// opError wraps a system call's error the way the net package would, so
// that health reasons and timeouts read the same on both engines.
func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, err)}
}

var errRespHeadTooLarge = fmt.Errorf("response head too large")

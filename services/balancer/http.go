package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// httpProxy is the handler of HTTP/2 clients (over TLS): it checks the
// request, picks a backend (by cookie, else by algorithm) and forwards it
// as HTTP/1.1 through httputil.ReverseProxy, whose Transport is the proxy
// itself so that a request that could not connect moves to another
// backend. HTTP/1 clients are served by the engine in h1.go.
type httpProxy struct {
	b  *Balancer
	rp *httputil.ReverseProxy
}

// reqState travels with a request through the ReverseProxy.
type reqState struct {
	cfg     *Config
	pool    *pool
	key     uint64
	hasKey  bool
	pinned  *backend // named by the persistence cookie and usable
	backend *backend // that answered
	client  net.Addr // for PROXY v2
	local   net.Addr // the address the client connected to
}

type stateKey struct{}

func (b *Balancer) newHTTPProxy() *httpProxy {
	h := &httpProxy{b: b}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      h,
		BufferPool:     bufferPool{},
		ErrorHandler:   h.errorHandler,
		ModifyResponse: h.modifyResponse,
		ErrorLog:       slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	return h
}

func (h *httpProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := h.b
	b.fe.requests.Add(1)
	cfg := b.cfg.Load()
	if r.Method == http.MethodConnect {
		b.fe.badRequests.Add(1)
		http.Error(w, "CONNECT is not supported", http.StatusMethodNotAllowed)
		return
	}
	if cfg.MaxBodyBytes > 0 {
		if r.ContentLength > cfg.MaxBodyBytes {
			b.fe.badRequests.Add(1)
			w.Header().Set("Connection", "close")
			errorPage(w, http.StatusRequestEntityTooLarge, "The request body is too large.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes)
	}
	rs := &reqState{cfg: cfg, pool: b.pool.Load()}
	rs.key, rs.hasKey = requestKey(cfg, r)
	if cfg.Cookie != nil {
		if name := pinnedBackend(r.Header, cfg.Cookie); name != "" {
			if be := rs.pool.byName[name]; be != nil && be.usable.Load() {
				rs.pinned = be
			}
		}
	}
	if cfg.SendProxyV2 {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			rs.client = net.TCPAddrFromAddrPort(ap)
		}
		rs.local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	}
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, rs)))
}

// rewrite prepares the outgoing request: the backend is chosen later, in
// RoundTrip; the Host header stays the client's.
func (h *httpProxy) rewrite(pr *httputil.ProxyRequest) {
	rs := pr.In.Context().Value(stateKey{}).(*reqState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "backend.invalid"
	cfg := rs.cfg
	if cfg.Forwarded != "none" {
		pr.Out.Header.Del("Forwarded")
	}
	if cfg.Forwarded == "xff" || cfg.Forwarded == "both" {
		pr.SetXForwarded()
	}
	if cfg.Forwarded == "rfc7239" || cfg.Forwarded == "both" {
		pr.Out.Header.Set("Forwarded", forwardedValue(pr.In))
	}
	if cfg.Cookie != nil {
		stripPersistence(pr.Out.Header, cfg.Cookie)
	}
}

// forwardedValue is the RFC 7239 Forwarded element for a request:
// for=client;host=host;proto=http|https, with IPv6 quoted and bracketed.
func forwardedValue(r *http.Request) string {
	var sb strings.Builder
	sb.WriteString("for=")
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		if a := ap.Addr().Unmap(); a.Is4() {
			sb.WriteString(a.String())
		} else {
			sb.WriteString(`"[` + a.String() + `]"`)
		}
	} else {
		sb.WriteString("unknown")
	}
	if r.Host != "" && isForwardedToken(r.Host) {
		sb.WriteString(";host=" + r.Host)
	}
	if r.TLS != nil {
		sb.WriteString(";proto=https")
	} else {
		sb.WriteString(";proto=http")
	}
	return sb.String()
}

// isForwardedToken reports whether s can be written unquoted in Forwarded.
func isForwardedToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~!$&'*+^`|:", c) >= 0) {
			return false
		}
	}
	return true
}

// RoundTrip sends the request to a backend. A request that could not
// connect (refused, unreachable, connect timeout) is retried on another
// backend up to Retries times, as long as none of its body was read.
func (h *httpProxy) RoundTrip(req *http.Request) (*http.Response, error) {
	rs := req.Context().Value(stateKey{}).(*reqState)
	var body *trackedBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &trackedBody{rc: req.Body}
		req.Body = body
	}
	var tried *backend
	for attempt := 0; ; attempt++ {
		var be *backend
		var err error
		if attempt == 0 && rs.pinned != nil && rs.pinned.usable.Load() {
			be = rs.pinned
			if err = be.acquire(req.Context(), rs.cfg.QueueTimeout); err == nil {
				be.requests.Add(1)
			}
		} else {
			be, err = rs.pool.acquire(req.Context(), rs.key, rs.hasKey, tried)
		}
		if err != nil {
			return nil, err
		}
		req.URL.Host = be.addr
		start := time.Now()
		resp, err := be.transport.Load().RoundTrip(req)
		if err == nil {
			be.latency.observe(time.Since(start))
			if resp.StatusCode >= 500 {
				be.http5xx.Add(1)
			}
			h.b.observeTraffic(be, true, "")
			rs.backend = be
			if resp.StatusCode == http.StatusSwitchingProtocols {
				if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
					resp.Body = &releaseRWC{releaseBody{rc: rwc, be: be}, rwc}
					return resp, nil
				}
			}
			resp.Body = &releaseBody{rc: resp.Body, be: be}
			return resp, nil
		}
		be.release()
		if req.Context().Err() != nil {
			return nil, err // the client went away: not the backend's fault
		}
		connectFailed := errors.As(err, new(*dialError))
		if connectFailed {
			be.connErrors.Add(1)
		} else {
			be.respErrors.Add(1)
		}
		h.b.observeTraffic(be, false, shortErr(err))
		if connectFailed && attempt < rs.cfg.Retries && (body == nil || !body.read.Load()) {
			be.retries.Add(1)
			h.b.fe.retries.Add(1)
			tried = be
			continue
		}
		return nil, err
	}
}

func (h *httpProxy) modifyResponse(resp *http.Response) error {
	rs := resp.Request.Context().Value(stateKey{}).(*reqState)
	if c := rs.cfg.Cookie; c != nil && rs.backend != nil {
		setPersistence(resp.Header, c, rs.backend.name, rs.pinned == rs.backend)
	}
	return nil
}

func (h *httpProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	fe := &h.b.fe
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, errNoBackend), errors.Is(err, errQueueTimeout):
		fe.noBackend.Add(1)
		w.Header().Set("Retry-After", "1")
		errorPage(w, http.StatusServiceUnavailable, "No server is available to handle this request.")
	case errors.As(err, &tooBig):
		fe.badRequests.Add(1)
		w.Header().Set("Connection", "close")
		errorPage(w, http.StatusRequestEntityTooLarge, "The request body is too large.")
	case r.Context().Err() != nil:
		// The client is gone; nobody reads an answer.
	case isTimeout(err):
		fe.timeouts.Add(1)
		errorPage(w, http.StatusGatewayTimeout, "The server didn't respond in time.")
	default:
		fe.badGateway.Add(1)
		errorPage(w, http.StatusBadGateway, "The server returned an invalid or incomplete response.")
	}
	h.b.log.Debug("proxy error", "path", r.URL.Path, "err", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) ||
		strings.Contains(err.Error(), "timeout awaiting response headers")
}

// errorPage writes the balancer's own small HTML error page. It never
// shows the software or its version, nor the underlying error.
func errorPage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<html><body><h1>%d %s</h1>\n%s\n</body></html>\n", code, http.StatusText(code), msg)
}

// trackedBody records whether the request body was read, which decides
// whether the request may be retried. Its Close does nothing: the server
// owns the client's body, and a retry needs it open.
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (t *trackedBody) Read(p []byte) (int, error) {
	t.read.Store(true)
	return t.rc.Read(p)
}

func (t *trackedBody) Close() error { return nil }

// releaseBody frees the backend's slot when the response body is closed.
type releaseBody struct {
	rc   io.ReadCloser
	be   *backend
	done atomic.Bool
}

func (r *releaseBody) Read(p []byte) (int, error) { return r.rc.Read(p) }

func (r *releaseBody) Close() error {
	err := r.rc.Close()
	if r.done.CompareAndSwap(false, true) {
		r.be.release()
	}
	return err
}

// releaseRWC is releaseBody for a switched protocol (WebSocket), whose
// body the ReverseProxy also writes to.
type releaseRWC struct {
	releaseBody
	w io.Writer
}

func (r *releaseRWC) Write(p []byte) (int, error) { return r.w.Write(p) }

// dialError marks a failure to connect to a backend: safe to retry.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// newTransport returns the keep-alive connection pool to one backend.
func (b *Balancer) newTransport(cfg *Config, be *backend) *http.Transport {
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	serverTimeout := cfg.ServerTimeout
	proxyV2 := cfg.SendProxyV2
	addr := be.addr
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, &dialError{err}
			}
			if proxyV2 {
				hdr := appendProxyV2Local(nil)
				if rs, ok := ctx.Value(stateKey{}).(*reqState); ok {
					hdr = appendProxyV2(nil, rs.client, rs.local)
				}
				c.SetWriteDeadline(time.Now().Add(serverTimeout))
				if _, err := c.Write(hdr); err != nil {
					c.Close()
					return nil, &dialError{err}
				}
			}
			return &deadlineConn{Conn: c, timeout: serverTimeout}, nil
		},
		// Shorter than Apache's default KeepAliveTimeout (5s), so the
		// balancer closes an idle connection before the backend does.
		IdleConnTimeout:        4 * time.Second,
		MaxIdleConnsPerHost:    1024,
		ResponseHeaderTimeout:  serverTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		DisableKeepAlives:      proxyV2, // a PROXY header names one client
		MaxResponseHeaderBytes: 64 << 10,
		WriteBufferSize:        16 << 10,
		ReadBufferSize:         16 << 10,
	}
}

// deadlineConn bounds every read and write on a backend connection by the
// server timeout, so a backend that stops sending (or reading) mid-body
// costs at most that long.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// bufferPool recycles the ReverseProxy's copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// Package web is the static web server of web nodes. It replaces the
// nginx, lighttpd or Apache of the seeds: GET and HEAD of the files under a
// web root, with index files, MIME types, ETag/Last-Modified and 304s, byte
// ranges, precompressed .gz siblings, Cache-Control rules, a custom 404 page,
// a page naming the node that answered, a health endpoint for the balancer,
// an access log and optional TLS with HTTP/2.
//
// The layers follow net/http's file server: the path guard (guard.go) turns
// a request target into a path that cannot leave the root; the lookup
// (lookup.go, cache.go) handles directories and index files and keeps small
// files in memory; the content layer (serve.go, cond.go, ranges.go) answers
// conditional and range requests. Plain HTTP/1.1 is served by this package's
// own connection loop (h1.go), which is about twice as fast as net/http for
// small files; HTTPS and HTTP/2 go through net/http (front.go). Both fronts
// share every layer below the wire format.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strings"
	"time"
)

// Config configures the web server. The zero value of every field means
// its default, so Config{} serves /data/www on port 80.
type Config struct {
	// Listen is the host:port of plain HTTP; "" means ":80" (every address).
	Listen string
	// Root is the folder served; "" means /data/www. It must exist when
	// the server starts or reloads.
	Root string
	// Index is the file served for a directory; "" means index.html.
	Index string
	// Listing turns on HTML listings of directories that have no index
	// file. Off by default: such directories answer 404.
	Listing bool
	// ShowDotfiles serves files and folders whose names begin with a dot.
	// By default they answer 404, except /.well-known/ (RFC 8615), which
	// certificate authorities and other tools need.
	ShowDotfiles bool
	// SymlinksOutsideRoot follows symbolic links that point outside Root.
	// By default they answer 404; links that stay inside Root are always
	// followed. Turning this on publishes whatever such a link reaches.
	SymlinksOutsideRoot bool
	// CacheControl sets the Cache-Control header of files by path pattern;
	// the first matching rule wins and no match sends no header.
	CacheControl []CacheRule
	// NotFoundPage is a page under Root, like /404.html, sent with every
	// 404 answer; "" means /404.html when that file exists, else a short
	// text.
	NotFoundPage string
	// WhoAmIPath answers with the node's hostname, like the seeds'
	// gethostname() test page; "" means /whoami and "off" turns it off.
	WhoAmIPath string
	// HealthPath answers 200 while the node serves (503 when the web root
	// is gone), for the balancer's checks; "" means /healthz, "off" none.
	HealthPath string
	// Hostname is what WhoAmIPath answers; "" means the kernel's hostname.
	Hostname string

	// AccessLog receives one line per request in the combined log format;
	// nil means standard output, which the supervisor keeps per service.
	AccessLog io.Writer
	// NoAccessLog turns the access log off, to AccessLog and to
	// AccessLogFile.
	NoAccessLog bool
	// AccessLogFile also appends the lines to this file; "" means none.
	// The file is renamed to <name>.1 when it grows beyond 16 MiB.
	AccessLogFile string
	// AccessLogBuffer bounds the bytes of lines waiting to be written; 0
	// means 256 KiB. Lines that do not fit are dropped and counted, so a
	// slow log never slows serving down.
	AccessLogBuffer int

	// TLSCert and TLSKey are PEM files; setting both turns on HTTPS with
	// HTTP/2 on TLSListen, next to plain HTTP. The files are read again on
	// every reload and when they change.
	TLSCert, TLSKey string
	// TLSListen is the host:port of HTTPS; "" means ":443". HTTPS applies
	// ReadHeaderTimeout, IdleTimeout and MaxHeaderBytes as they were when
	// it started: a reload changes them only when TLSListen changes too.
	TLSListen string

	// ReadHeaderTimeout bounds the time from a request's first byte to the
	// end of its header, so slow clients (slowloris) cannot hold a
	// connection; 0 means 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections that send no new request;
	// 0 means 60s. The timeouts are enforced with a granularity of a
	// fraction of their value to save timer updates.
	IdleTimeout time.Duration
	// WriteTimeout closes connections whose client reads nothing for this
	// long while a response is written; 0 means 30s.
	WriteTimeout time.Duration
	// GracePeriod is how long Run waits for requests in flight when it
	// stops; 0 means 10s.
	GracePeriod time.Duration
	// MaxHeaderBytes bounds the request line plus the header fields; 0
	// means 16 KiB. Larger requests answer 431.
	MaxHeaderBytes int
	// MaxURIBytes bounds the request target; 0 means 8 KiB. Longer targets
	// answer 414.
	MaxURIBytes int
	// MaxConns bounds the open plain HTTP connections; 0 means 4096.
	// Connections beyond it are closed at once. (HTTPS connections are
	// net/http's and not counted.)
	MaxConns int

	// FileCacheTTL is how long file metadata (and the contents of small
	// files) are trusted before the file is checked again, like lighttpd's
	// stat cache; 0 means 1s, and a negative value checks on every request.
	// A replaced file is served either whole old or whole new, never mixed.
	FileCacheTTL time.Duration
	// MaxCachedFile is the largest file kept in memory; 0 means 256 KiB.
	// Larger files are sent from disk with sendfile.
	MaxCachedFile int64
	// FileCacheBytes bounds the memory of cached file contents; 0 means
	// 32 MiB.
	FileCacheBytes int64
	// MimeTypes adds or overrides Content-Types by extension, e.g.
	// {".md": "text/markdown; charset=utf-8"}.
	MimeTypes map[string]string

	// ListenFunc opens the listeners; nil means net.ListenConfig.Listen.
	// Tests use it to listen inside a network namespace.
	ListenFunc func(ctx context.Context, network, addr string) (net.Listener, error)
}

// CacheRule sets Cache-Control for the paths matching Match.
type CacheRule struct {
	// Match is a pattern of path.Match. Without a slash it matches the
	// file's name in any folder ("*.css"); starting with a slash it matches
	// the whole path ("/img/*.png"); ending with a slash it matches
	// everything under that folder ("/static/").
	Match string
	// Value is the header's value, e.g. "public, max-age=86400".
	Value string
}

// Defaults of Config.
const (
	DefaultListen            = ":80"
	DefaultTLSListen         = ":443"
	DefaultRoot              = "/data/www"
	DefaultIndex             = "index.html"
	DefaultWhoAmIPath        = "/whoami"
	DefaultHealthPath        = "/healthz"
	DefaultNotFoundPage      = "/404.html"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultGracePeriod       = 10 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxURIBytes       = 8 << 10
	DefaultMaxConns          = 4096
	DefaultFileCacheTTL      = time.Second
	DefaultMaxCachedFile     = 256 << 10
	DefaultFileCacheBytes    = 32 << 20
	DefaultAccessLogBuffer   = 256 << 10

	// Off turns WhoAmIPath or HealthPath off.
	Off = "off"

	accessLogFileMax = 16 << 20
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Listen, DefaultListen)
	def(&c.TLSListen, DefaultTLSListen)
	def(&c.Root, DefaultRoot)
	def(&c.Index, DefaultIndex)
	def(&c.WhoAmIPath, DefaultWhoAmIPath)
	def(&c.HealthPath, DefaultHealthPath)
	defd := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defd(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defd(&c.IdleTimeout, DefaultIdleTimeout)
	defd(&c.WriteTimeout, DefaultWriteTimeout)
	defd(&c.GracePeriod, DefaultGracePeriod)
	defd(&c.FileCacheTTL, DefaultFileCacheTTL)
	defi := func(i *int, v int) {
		if *i == 0 {
			*i = v
		}
	}
	defi(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defi(&c.MaxURIBytes, DefaultMaxURIBytes)
	defi(&c.MaxConns, DefaultMaxConns)
	defi(&c.AccessLogBuffer, DefaultAccessLogBuffer)
	if c.MaxCachedFile == 0 {
		c.MaxCachedFile = DefaultMaxCachedFile
	}
	if c.FileCacheBytes == 0 {
		c.FileCacheBytes = DefaultFileCacheBytes
	}
	return c
}

// tlsOn reports whether c serves HTTPS.
func (c *Config) tlsOn() bool { return c.TLSCert != "" || c.TLSKey != "" }

// Validate checks c (after defaults) and returns an error naming every bad
// field. It touches no file: a missing root is found by Run and Reload.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("web: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(field, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad(field, "%q is not host:port", addr)
		} else if port == "" {
			bad(field, "%q has no port", addr)
		}
	}
	checkAddr("Listen", c.Listen)
	if !path.IsAbs(c.Root) {
		bad("Root", "%q is not an absolute path", c.Root)
	}
	if c.Index == "." || c.Index == ".." || strings.ContainsAny(c.Index, "/\\\x00") {
		bad("Index", "%q is not a file name like index.html", c.Index)
	}
	for _, f := range []struct{ name, v string }{{"WhoAmIPath", c.WhoAmIPath}, {"HealthPath", c.HealthPath}} {
		if f.v != Off && (!strings.HasPrefix(f.v, "/") || strings.ContainsAny(f.v, "?# \x00\r\n")) {
			bad(f.name, "%q is not a path like /name or %q", f.v, Off)
		}
	}
	if c.WhoAmIPath != Off && c.WhoAmIPath == c.HealthPath {
		bad("HealthPath", "%q is also WhoAmIPath", c.HealthPath)
	}
	if c.NotFoundPage != "" && !strings.HasPrefix(c.NotFoundPage, "/") {
		bad("NotFoundPage", "%q is not a path under the root like /404.html", c.NotFoundPage)
	}
	for i, r := range c.CacheControl {
		field := fmt.Sprintf("CacheControl[%d]", i)
		if r.Match == "" {
			bad(field+".Match", "empty; use e.g. *.css or /static/")
		} else if strings.Contains(r.Match, "/") && !strings.HasPrefix(r.Match, "/") {
			bad(field+".Match", "%q: a pattern with a slash must start with one, like /img/*.png", r.Match)
		} else if _, err := path.Match(strings.TrimSuffix(r.Match, "/"), ""); err != nil {
			bad(field+".Match", "%q is not a valid pattern: %v", r.Match, err)
		}
		if msg := checkHeaderValue(r.Value); msg != "" {
			bad(field+".Value", "%s", msg)
		}
	}
	for ext, t := range c.MimeTypes {
		if !strings.HasPrefix(ext, ".") || strings.Contains(ext, "/") {
			bad("MimeTypes", "key %q is not an extension like .md", ext)
		}
		if msg := checkHeaderValue(t); msg != "" {
			bad("MimeTypes["+ext+"]", "%s", msg)
		}
	}
	if c.AccessLogFile != "" && !path.IsAbs(c.AccessLogFile) {
		bad("AccessLogFile", "%q is not an absolute path", c.AccessLogFile)
	}
	if c.tlsOn() {
		if c.TLSCert == "" || c.TLSKey == "" {
			bad("TLSCert", "TLS needs both TLSCert and TLSKey")
		}
		checkAddr("TLSListen", c.TLSListen)
		if c.TLSListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			bad("TLSListen", "%q is also Listen", c.TLSListen)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"IdleTimeout", c.IdleTimeout}, {"WriteTimeout", c.WriteTimeout}, {"GracePeriod", c.GracePeriod}} {
		if d.v < 0 {
			bad(d.name, "%s is negative", d.v)
		}
	}
	if c.MaxHeaderBytes < 256 {
		bad("MaxHeaderBytes", "%d is too small (at least 256)", c.MaxHeaderBytes)
	}
	if c.MaxURIBytes < 16 || c.MaxURIBytes > c.MaxHeaderBytes {
		bad("MaxURIBytes", "%d is out of range 16..MaxHeaderBytes (%d)", c.MaxURIBytes, c.MaxHeaderBytes)
	}
	if c.MaxConns < 0 || c.AccessLogBuffer < 0 || c.MaxCachedFile < 0 || c.FileCacheBytes < 0 {
		bad("limits", "MaxConns, AccessLogBuffer, MaxCachedFile and FileCacheBytes may not be negative")
	}
	return errors.Join(errs...)
}

// checkHeaderValue reports why v cannot be a header field value, or "".
func checkHeaderValue(v string) string {
	if v == "" {
		return "empty"
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Sprintf("%q holds a control character", v)
		}
	}
	return ""
}

// cacheControlFor returns the Cache-Control value of the file at urlPath
// (decoded, starting with "/"), or "".
func (c *Config) cacheControlFor(urlPath string) string {
	base := path.Base(urlPath)
	for _, r := range c.CacheControl {
		switch {
		case strings.HasSuffix(r.Match, "/"):
			if strings.HasPrefix(urlPath, r.Match) {
				return r.Value
			}
		case strings.HasPrefix(r.Match, "/"):
			if ok, _ := path.Match(r.Match, urlPath); ok {
				return r.Value
			}
		default:
			if ok, _ := path.Match(r.Match, base); ok {
				return r.Value
			}
		}
	}
	return ""
}

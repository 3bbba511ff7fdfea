package overlays

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Web configures the static web server on web nodes. Every field is
// optional; the zero value serves /data/www on port 80 of eth0's address.
type Web struct {
	// Port is the HTTP port; 0 means DefaultWebPort.
	Port int `yaml:"port,omitempty"`
	// Listen is the address the server listens on; unset means eth0's
	// address, and 0.0.0.0 means every address of the node.
	Listen netip.Addr `yaml:"listen,omitempty"`
	// Root is the absolute folder served; "" means DefaultWebRoot.
	Root string `yaml:"root,omitempty"`
	// Index is the file served for a folder; "" means index.html.
	Index string `yaml:"index,omitempty"`
	// Listing shows the files of folders that have no index file.
	Listing bool `yaml:"listing,omitempty"`
	// ShowDotfiles serves names beginning with a dot, hidden by default
	// (except /.well-known/).
	ShowDotfiles bool `yaml:"show_dotfiles,omitempty"`
	// SymlinksOutsideRoot follows symbolic links that leave the root,
	// refused by default.
	SymlinksOutsideRoot bool `yaml:"symlinks_outside_root,omitempty"`
	// NotFoundPage is a page under the root sent with 404 answers, like
	// /404.html (the default when that file exists).
	NotFoundPage string `yaml:"not_found_page,omitempty"`
	// WhoAmIPath answers with the node's hostname; "" means /whoami, "off"
	// turns it off.
	WhoAmIPath string `yaml:"whoami_path,omitempty"`
	// HealthPath is the balancer's check; "" means /healthz, "off" none.
	HealthPath string `yaml:"health_path,omitempty"`
	// CacheControl sets Cache-Control by path pattern, first match wins.
	CacheControl []WebCacheRule `yaml:"cache_control,omitempty"`
	// MimeTypes adds or overrides Content-Types by extension.
	MimeTypes map[string]string `yaml:"mime_types,omitempty"`
	// AccessLog configures the access log, which goes to the node's log
	// by default.
	AccessLog *WebAccessLog `yaml:"access_log,omitempty"`
	// TLS turns on HTTPS with HTTP/2 next to plain HTTP.
	TLS *WebTLS `yaml:"tls,omitempty"`
	// Timeouts bound how long clients may take; zero fields mean defaults.
	Timeouts WebTimeouts `yaml:"timeouts,omitempty"`
	// MaxHeaderBytes bounds a request's line and header; 0 means 16 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes,omitempty"`
}

// WebCacheRule sets Cache-Control for the paths matching Match.
type WebCacheRule struct {
	// Match is a pattern: "*.css" matches file names in any folder,
	// "/img/*.png" whole paths, "/static/" everything under a folder.
	Match string `yaml:"match"`
	// Value is the header's value, e.g. "public, max-age=86400".
	Value string `yaml:"value"`
}

// WebAccessLog configures the web server's access log.
type WebAccessLog struct {
	// Off turns the access log off.
	Off bool `yaml:"off,omitempty"`
	// File also appends the lines to this file on the data partition.
	File string `yaml:"file,omitempty"`
}

// WebTLS configures HTTPS.
type WebTLS struct {
	// Port is the HTTPS port; 0 means DefaultWebTLSPort.
	Port int `yaml:"port,omitempty"`
	// Cert and Key are PEM files, usually on the data partition.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// WebTimeouts bound how long clients may take.
type WebTimeouts struct {
	// ReadHeader bounds the arrival of a request's header; 0 means 10s.
	ReadHeader Duration `yaml:"read_header,omitempty"`
	// Idle closes keep-alive connections without requests; 0 means 60s.
	Idle Duration `yaml:"idle,omitempty"`
	// Write closes connections whose client stops reading; 0 means 30s.
	Write Duration `yaml:"write,omitempty"`
}

// Defaults of the web section.
const (
	DefaultWebPort    = 80
	DefaultWebTLSPort = 443
	DefaultWebRoot    = "/data/www"
)

// PortOrDefault returns w.Port, or DefaultWebPort when w is nil or the port unset.
func (w *Web) PortOrDefault() int {
	if w == nil || w.Port == 0 {
		return DefaultWebPort
	}
	return w.Port
}

// RootOrDefault returns w.Root, or DefaultWebRoot when w is nil or the root unset.
func (w *Web) RootOrDefault() string {
	if w == nil || w.Root == "" {
		return DefaultWebRoot
	}
	return w.Root
}

// PortOrDefault returns t.Port, or DefaultWebTLSPort when it is unset.
func (t *WebTLS) PortOrDefault() int {
	if t.Port == 0 {
		return DefaultWebTLSPort
	}
	return t.Port
}

func (w *Web) validate(p *problems, fieldPath string, n *Node) {
	checkPort(p, fieldPath+".port", w.Port)
	w.validateListen(p, fieldPath+".listen", n)
	if w.Root != "" {
		switch {
		case !path.IsAbs(w.Root):
			p.addf(fieldPath+".root", "%q is not an absolute path like %s", w.Root, DefaultWebRoot)
		case path.Clean(w.Root) != w.Root:
			p.addf(fieldPath+".root", "%q is not clean; write %s", w.Root, path.Clean(w.Root))
		case hasControl(w.Root):
			p.addf(fieldPath+".root", "%q holds control characters", w.Root)
		case w.Root == "/":
			p.addf(fieldPath+".root", "serving / would publish the whole system; use e.g. %s", DefaultWebRoot)
		}
	}
	if w.Index != "" && (w.Index == "." || w.Index == ".." || strings.ContainsAny(w.Index, "/\\") || hasControl(w.Index)) {
		p.addf(fieldPath+".index", "%q is not a file name like index.html", w.Index)
	}
	if w.NotFoundPage != "" {
		checkWebPath(p, fieldPath+".not_found_page", w.NotFoundPage, "/404.html", false)
	}
	checkWebPath(p, fieldPath+".whoami_path", w.WhoAmIPath, "/whoami", true)
	checkWebPath(p, fieldPath+".health_path", w.HealthPath, "/healthz", true)
	if w.WhoAmIPath != "" && w.WhoAmIPath != "off" && w.WhoAmIPath == w.HealthPath {
		p.addf(fieldPath+".health_path", "%q is also whoami_path", w.HealthPath)
	}
	for i, r := range w.CacheControl {
		r.validate(p, fmt.Sprintf("%s.cache_control[%d]", fieldPath, i))
	}
	for ext, t := range w.MimeTypes {
		f := fieldPath + ".mime_types." + ext
		if len(ext) < 2 || ext[0] != '.' || strings.ContainsAny(ext, "/\\ ") || hasControl(ext) {
			p.addf(f, "%q is not an extension like .md", ext)
		}
		if msg := checkWebHeaderValue(t); msg != "" {
			p.addf(f, "%s", msg)
		}
	}
	if w.AccessLog != nil && w.AccessLog.File != "" {
		checkWebFile(p, fieldPath+".access_log.file", w.AccessLog.File)
	}
	if w.TLS != nil {
		w.TLS.validate(p, fieldPath+".tls", w, n)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read_header", w.Timeouts.ReadHeader.Duration}, {"idle", w.Timeouts.Idle.Duration}, {"write", w.Timeouts.Write.Duration}} {
		if d.v != 0 && (d.v < 100*time.Millisecond || d.v > time.Hour) {
			p.addf(fieldPath+".timeouts."+d.name, "%s is out of range 100ms..1h", d.v)
		}
	}
	if w.MaxHeaderBytes != 0 && (w.MaxHeaderBytes < 1024 || w.MaxHeaderBytes > 1<<20) {
		p.addf(fieldPath+".max_header_bytes", "%d is out of range 1024..1048576", w.MaxHeaderBytes)
	}
}

// validateListen checks that the listen address is one of the node's own
// (or 0.0.0.0): binding to any other fails on the node.
func (w *Web) validateListen(p *problems, field string, n *Node) {
	a := w.Listen
	if !a.IsValid() || a == netip.IPv4Unspecified() {
		return
	}
	if !a.Is4() {
		p.addf(field, "%s is not an IPv4 address", a)
		return
	}
	if n == nil {
		return
	}
	var own []string
	for _, fa := range n.addresses() {
		if fa.addr == a {
			return
		}
		own = append(own, fa.addr.String())
	}
	p.addf(field, "%s is not an address of this node (%s); use one of them or 0.0.0.0", a, strings.Join(own, ", "))
}

func (r WebCacheRule) validate(p *problems, field string) {
	switch {
	case r.Match == "":
		p.addf(field+".match", "required, e.g. \"*.css\" or /static/")
	case strings.Contains(r.Match, "/") && !strings.HasPrefix(r.Match, "/"):
		p.addf(field+".match", "%q: a pattern with a slash must start with one, like /img/*.png", r.Match)
	default:
		if _, err := path.Match(strings.TrimSuffix(r.Match, "/"), ""); err != nil {
			p.addf(field+".match", "%q is not a valid pattern (%v)", r.Match, err)
		}
	}
	if msg := checkWebHeaderValue(r.Value); msg != "" {
		p.addf(field+".value", "%s", msg)
	}
}

func (t *WebTLS) validate(p *problems, field string, w *Web, n *Node) {
	checkPort(p, field+".port", t.Port)
	if t.PortOrDefault() == w.PortOrDefault() {
		p.addf(field+".port", "port %d is also web.port", t.PortOrDefault())
	}
	if n != nil && t.PortOrDefault() == n.Admin.PortOrDefault() {
		p.addf(field+".port", "port %d is also used by admin.port", t.PortOrDefault())
	}
	if n != nil && n.Mirror != nil && t.PortOrDefault() == n.Mirror.PortOrDefault() {
		p.addf(field+".port", "port %d is also used by mirror.port", t.PortOrDefault())
	}
	for _, f := range []struct{ name, v string }{{"cert", t.Cert}, {"key", t.Key}} {
		if f.v == "" {
			p.addf(field+"."+f.name, "required, a PEM file like /data/tls/%s.pem", f.name)
			continue
		}
		checkWebFile(p, field+"."+f.name, f.v)
	}
}

// checkWebPath checks a path of the web site, like /healthz; "off" is
// allowed when canBeOff.
func checkWebPath(p *problems, field, v, example string, canBeOff bool) {
	if v == "" || (canBeOff && v == "off") {
		return
	}
	if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?# \\") || hasControl(v) {
		if canBeOff {
			p.addf(field, "%q is not a path like %s (or off)", v, example)
		} else {
			p.addf(field, "%q is not a path like %s", v, example)
		}
	}
}

// checkWebFile checks an absolute, clean file path.
func checkWebFile(p *problems, field, v string) {
	switch {
	case !path.IsAbs(v):
		p.addf(field, "%q is not an absolute path", v)
	case path.Clean(v) != v:
		p.addf(field, "%q is not clean; write %s", v, path.Clean(v))
	case hasControl(v):
		p.addf(field, "%q holds control characters", v)
	}
}

// checkWebHeaderValue reports why v cannot be an HTTP header value, or "".
func checkWebHeaderValue(v string) string {
	if strings.TrimSpace(v) == "" {
		return "required, a header value"
	}
	if hasControl(v) {
		return fmt.Sprintf("%q holds control characters", v)
	}
	return ""
}

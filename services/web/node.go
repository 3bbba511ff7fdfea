package web

import (
	"errors"
	"log/slog"
	"net"
	"strconv"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
)

// New is the services.Factory of the web service: it maps the node's web
// section to a Config and returns a Server that has not started.
func New(node *overlays.Node, log *slog.Logger) (services.Service, error) {
	cfg, err := ConfigFromNode(node)
	if err != nil {
		return nil, err
	}
	return NewServer(cfg, log)
}

var _ services.Factory = New

// ConfigFromNode maps a node's overlay to the web server's Config. The
// server listens on the web section's listen address, else on eth0's, and
// names the node by its hostname.
func ConfigFromNode(n *overlays.Node) (Config, error) {
	if n == nil {
		return Config{}, errors.New("web: no node configuration")
	}
	w := n.Web
	if w == nil {
		w = &overlays.Web{}
	}
	host := ""
	switch {
	case w.Listen.IsValid() && !w.Listen.IsUnspecified():
		host = w.Listen.String()
	case w.Listen.IsValid():
		// 0.0.0.0: every address.
	case n.Eth0Address().IsValid():
		host = n.Eth0Address().Addr().String()
	}
	cfg := Config{
		Listen:              net.JoinHostPort(host, strconv.Itoa(w.PortOrDefault())),
		Root:                w.RootOrDefault(),
		Index:               w.Index,
		Listing:             w.Listing,
		ShowDotfiles:        w.ShowDotfiles,
		SymlinksOutsideRoot: w.SymlinksOutsideRoot,
		NotFoundPage:        w.NotFoundPage,
		WhoAmIPath:          w.WhoAmIPath,
		HealthPath:          w.HealthPath,
		Hostname:            n.Hostname,
		MimeTypes:           w.MimeTypes,
		ReadHeaderTimeout:   w.Timeouts.ReadHeader.Duration,
		IdleTimeout:         w.Timeouts.Idle.Duration,
		WriteTimeout:        w.Timeouts.Write.Duration,
		MaxHeaderBytes:      w.MaxHeaderBytes,
	}
	for _, r := range w.CacheControl {
		cfg.CacheControl = append(cfg.CacheControl, CacheRule{Match: r.Match, Value: r.Value})
	}
	if a := w.AccessLog; a != nil {
		cfg.NoAccessLog = a.Off
		cfg.AccessLogFile = a.File
	}
	if t := w.TLS; t != nil {
		cfg.TLSCert, cfg.TLSKey = t.Cert, t.Key
		cfg.TLSListen = net.JoinHostPort(host, strconv.Itoa(t.PortOrDefault()))
	}
	if cfg.MaxURIBytes == 0 && cfg.MaxHeaderBytes != 0 && cfg.MaxHeaderBytes < DefaultMaxURIBytes {
		cfg.MaxURIBytes = cfg.MaxHeaderBytes / 2
	}
	return cfg, cfg.Validate()
}

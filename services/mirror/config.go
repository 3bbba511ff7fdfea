// Package mirror keeps the web root of every web node equal to the
// primary's, in place of the seeds' rsync-from-cron.
//
// The primary (the overlay's mirror.primary) lists its tree, watches it
// with inotify (every folder, new ones included; watch_linux.go) and scans
// it again every ScanInterval as a safety net. Changes that settle for
// BatchDelay go out as one generation. Replicas dial the primary over
// mutual TLS 1.3 (identity.go: keys derived from a cluster secret, or
// certificate files), receive the whole listing, fetch what differs, and
// then follow the generations as they come, acking each once applied; the
// primary's Status shows every replica's lag from those acks.
//
// A replica fetches a file with an rsync-style delta (package delta)
// against its own copy, a partial transfer cut off earlier, or a file just
// deleted with the same size and mtime (a rename); a window of requests
// keeps the link busy. Every file lands whole: it is written under a
// temporary name in its folder, and files received are renamed into place
// in groups after one syncfs (fsync of the whole file system), so a reader
// sees the old file or the new one, never a mix. Paths from the wire are
// checked (checkPath), folders on the way must be real folders, and every
// write goes through an os.Root, so nothing received lands outside the
// web root; refusals are counted in Status.
//
// A replica that loses its primary (heartbeats find a pulled cable)
// retries with backoff and converges again from a fresh listing. The wire
// format is package wire.
package mirror

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/piimage/piimage/overlays"
)

// Config configures the mirror. The zero value of a field means its
// default; Name and Identity are required.
type Config struct {
	// Name is this node's hostname: sent to the peer, named by its
	// certificate.
	Name string
	// Root is the web root; "" means overlays.DefaultWebRoot. It is created
	// on replicas when missing.
	Root string
	// Primary is the host:port replicas dial; "" makes this node the
	// primary.
	Primary string
	// PrimaryName is the hostname the primary's certificate must name;
	// "" means the host part of Primary. A replica takes data only from a
	// peer that proves this name.
	PrimaryName string
	// Listen is the primary's listening address; "" means ":8873".
	Listen string
	// Excludes are rsync-style patterns of paths neither copied nor
	// deleted (see overlays.Mirror.Exclude).
	Excludes []string
	// Identity is the node's TLS material (IdentityFromSecret,
	// LoadIdentity). Required.
	Identity *Identity

	// ScanInterval is how often the whole tree is compared besides the
	// change notifications (primary: its tree with its listing; replica:
	// its copy with the primary's listing); 0 means one minute.
	ScanInterval time.Duration
	// BatchDelay is how long the primary waits for changes to settle
	// before sending them; 0 means 20ms.
	BatchDelay time.Duration
	// MaxBatchDelay bounds how long a stream of changes that never settles
	// is held back; 0 means 500ms.
	MaxBatchDelay time.Duration
	// Heartbeat is the interval of pings on an idle connection; a peer
	// silent for three of them is dropped. 0 means 2s.
	Heartbeat time.Duration
	// MaxBackoff bounds the wait between a replica's reconnections, which
	// starts at 100ms and doubles; 0 means 5s.
	MaxBackoff time.Duration
	// Window is how many file requests a replica keeps in flight; 0 means 64.
	Window int
	// NoCompress sends file data as is. By default data that deflates
	// well (not images, archives or video) is deflated.
	NoCompress bool
	// NoFsync skips the syncfs before each group of renames (after a power
	// cut, files may then be empty; the next listing fetches them again).
	NoFsync bool
	// AtomicTree makes a replica switch its whole tree at once: the root
	// becomes a link to a generation of the tree, and each generation from
	// the primary, once wholly applied to a working copy beside the root,
	// becomes a new generation the link is switched to in one rename
	// (generations.go). A reader that holds the root open sees the whole
	// old tree or the whole new one. Ignored on the primary.
	AtomicTree bool
	// GenerationGrace is how long a replaced generation is kept for the
	// readers still in it; 0 means 30s.
	GenerationGrace time.Duration
	// Dial opens the replica's TCP connection; nil means net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Defaults.
const (
	DefaultListen          = ":8873"
	DefaultScanInterval    = time.Minute
	DefaultBatchDelay      = 20 * time.Millisecond
	DefaultMaxBatchDelay   = 500 * time.Millisecond
	DefaultHeartbeat       = 2 * time.Second
	DefaultMaxBackoff      = 5 * time.Second
	DefaultWindow          = 64
	DefaultGenerationGrace = 30 * time.Second
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Root == "" {
		c.Root = overlays.DefaultWebRoot
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.PrimaryName == "" && c.Primary != "" {
		if host, _, err := net.SplitHostPort(c.Primary); err == nil {
			c.PrimaryName = host
		}
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = DefaultScanInterval
	}
	if c.BatchDelay == 0 {
		c.BatchDelay = DefaultBatchDelay
	}
	if c.MaxBatchDelay == 0 {
		c.MaxBatchDelay = DefaultMaxBatchDelay
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.GenerationGrace == 0 {
		c.GenerationGrace = DefaultGenerationGrace
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
		c.Dial = d.DialContext
	}
	return c
}

// IsPrimary reports whether the configuration makes this node the primary.
func (c *Config) IsPrimary() bool { return c.Primary == "" }

func (c *Config) check() error {
	if c.Name == "" {
		return fmt.Errorf("mirror config: Name is required")
	}
	if err := c.Identity.check(); err != nil {
		return fmt.Errorf("mirror config: %w", err)
	}
	if !c.IsPrimary() {
		if _, _, err := net.SplitHostPort(c.Primary); err != nil {
			return fmt.Errorf("mirror config: primary %q is not host:port: %w", c.Primary, err)
		}
		if c.PrimaryName == "" {
			return fmt.Errorf("mirror config: PrimaryName is required")
		}
	}
	if _, err := newExcluder(c.Excludes); err != nil {
		return fmt.Errorf("mirror config: %w", err)
	}
	return nil
}

// ConfigFromNode builds the mirror's configuration from a web node's
// overlay, reading its TLS material from the data partition: the
// certificate files of mirror.tls, else the secret file. It reports an
// error when the node has no mirror section.
func ConfigFromNode(node *overlays.Node) (Config, error) {
	m := node.Mirror
	if m == nil {
		return Config{}, fmt.Errorf("node %s has no mirror section", node.Hostname)
	}
	c := Config{
		Name:         node.Hostname,
		Root:         node.Web.RootOrDefault(),
		Listen:       fmt.Sprintf(":%d", m.PortOrDefault()),
		Excludes:     m.Exclude,
		ScanInterval: m.ScanIntervalOrDefault(),
		BatchDelay:   m.BatchDelayOrDefault(),
		AtomicTree:   m.AtomicTree,
	}
	if !m.IsPrimary(node) {
		c.Primary = m.PrimaryDialAddress()
		c.PrimaryName = m.Primary
	}
	var err error
	if t := m.TLS; t != nil {
		c.Identity, err = LoadIdentity(t.CA, t.Cert, t.Key)
	} else {
		var secret []byte
		if secret, err = ReadSecret(m.SecretFileOrDefault()); err == nil {
			c.Identity, err = IdentityFromSecret(secret, node.Hostname)
		}
	}
	if err != nil {
		return Config{}, fmt.Errorf("mirror of %s: %w", node.Hostname, err)
	}
	return c, nil
}

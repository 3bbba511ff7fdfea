package overlays

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Mirror configures the web-root mirror on web nodes: every web node keeps
// its root (web.root) equal to the primary's. Replicas dial the primary;
// the connection is mutual TLS 1.3 whose keys come from a cluster secret
// file or from certificate files, both on the data partition (never in the
// overlay itself, which the admin page shows):
//
//	mirror:
//	  primary: web01
//	  primary_address: 192.168.1.10   # on replicas; "" resolves the hostname
//	  port: 8873
//	  exclude: ["**/stats", "**/error", "**/files/pictures"]
//	  secret_file: /data/mirror/secret  # the default
//	  scan_interval: 1m
//	  batch_delay: 20ms
//	  atomic_tree: false              # true: replicas switch the whole tree at once
type Mirror struct {
	// Primary is the hostname of the web node whose root the others copy;
	// on the primary itself it is its own hostname.
	Primary string `yaml:"primary"`
	// PrimaryAddress is the IPv4 address replicas dial; the zero Addr means
	// the primary's hostname, resolved through DNS. Ignored on the primary.
	PrimaryAddress netip.Addr `yaml:"primary_address,omitempty"`
	// Port is the mirror protocol's TCP port; 0 means DefaultMirrorPort.
	Port int `yaml:"port,omitempty"`
	// Exclude lists paths, relative to the web root, that are neither
	// copied nor deleted on replicas, as rsync's --exclude reads them: "*"
	// and "?" stay within a path element, "**" matches any number of them,
	// a leading "/" anchors the pattern at the root, and a pattern without
	// "/" matches a name at any depth. An excluded folder is skipped whole.
	Exclude []string `yaml:"exclude,omitempty"`
	// SecretFile is a file holding the cluster secret (at least 16 bytes,
	// the same on every web node) from which every node derives the TLS
	// authority; "" means DefaultMirrorSecretFile. Unused when TLS is set.
	SecretFile string `yaml:"secret_file,omitempty"`
	// TLS names PEM files of a cluster CA and this node's certificate and
	// key (the certificate names the node's hostname); nil means the keys
	// derived from SecretFile.
	TLS *MirrorTLS `yaml:"tls,omitempty"`
	// ScanInterval is how often the whole tree is compared as a safety net
	// besides the change notifications, 1s..24h; 0 means
	// DefaultMirrorScanInterval.
	ScanInterval Duration `yaml:"scan_interval,omitempty"`
	// BatchDelay is how long the primary waits for a burst of changes to
	// settle before sending them, 0..10s; 0 means DefaultMirrorBatchDelay.
	BatchDelay Duration `yaml:"batch_delay,omitempty"`
	// AtomicTree makes replicas switch their whole web root at once: the
	// root becomes a symbolic link to a generation of the tree (a sibling
	// folder <root>.gen-N), and each burst of changes from the primary is
	// applied to a working copy (<root>.stage) and then published as a new
	// generation with one rename of the link, so the web server serves the
	// whole old tree or the whole new one. Costs one hard link per file
	// per burst. Ignored on the primary.
	AtomicTree bool `yaml:"atomic_tree,omitempty"`
}

// MirrorTLS names the PEM files of the mirror's TLS identity, absolute
// paths on the data partition.
type MirrorTLS struct {
	// CA is the certificate of the authority that signs every web node's
	// certificate.
	CA string `yaml:"ca"`
	// Cert is this node's certificate; it must name the node's hostname.
	Cert string `yaml:"cert"`
	// Key is this node's private key.
	Key string `yaml:"key"`
}

// Defaults of the mirror section.
const (
	DefaultMirrorPort         = 8873
	DefaultMirrorSecretFile   = "/data/mirror/secret"
	DefaultMirrorScanInterval = time.Minute
	DefaultMirrorBatchDelay   = 20 * time.Millisecond
)

// PortOrDefault returns m.Port, or DefaultMirrorPort when m is nil or the port unset.
func (m *Mirror) PortOrDefault() int {
	if m == nil || m.Port == 0 {
		return DefaultMirrorPort
	}
	return m.Port
}

// IsPrimary reports whether node n is the mirror's primary.
func (m *Mirror) IsPrimary(n *Node) bool {
	return m != nil && m.Primary == n.Hostname
}

// PrimaryDialAddress returns the host:port replicas dial: PrimaryAddress
// when set, else the primary's hostname.
func (m *Mirror) PrimaryDialAddress() string {
	host := m.Primary
	if m.PrimaryAddress.IsValid() {
		host = m.PrimaryAddress.String()
	}
	return fmt.Sprintf("%s:%d", host, m.PortOrDefault())
}

// SecretFileOrDefault returns m.SecretFile, or DefaultMirrorSecretFile.
func (m *Mirror) SecretFileOrDefault() string {
	if m == nil || m.SecretFile == "" {
		return DefaultMirrorSecretFile
	}
	return m.SecretFile
}

// ScanIntervalOrDefault returns m.ScanInterval, or DefaultMirrorScanInterval.
func (m *Mirror) ScanIntervalOrDefault() time.Duration {
	if m == nil || m.ScanInterval.Duration == 0 {
		return DefaultMirrorScanInterval
	}
	return m.ScanInterval.Duration
}

// BatchDelayOrDefault returns m.BatchDelay, or DefaultMirrorBatchDelay.
func (m *Mirror) BatchDelayOrDefault() time.Duration {
	if m == nil || m.BatchDelay.Duration == 0 {
		return DefaultMirrorBatchDelay
	}
	return m.BatchDelay.Duration
}

func (m *Mirror) validate(p *problems, fieldPath string, n *Node) {
	switch {
	case m.Primary == "":
		p.addf(fieldPath+".primary", "required, the hostname of the web node others copy from")
	case checkHostname(m.Primary) != "":
		p.addf(fieldPath+".primary", "%s", checkHostname(m.Primary))
	}
	if a := m.PrimaryAddress; a.IsValid() {
		own := ""
		for _, fa := range n.addresses() {
			if fa.addr == a {
				own = fa.field
			}
		}
		switch msg := checkUnicast4(a); {
		case msg != "":
			p.addf(fieldPath+".primary_address", "%s", msg)
		case m.Primary == n.Hostname && own == "" && len(n.addresses()) > 0:
			p.addf(fieldPath+".primary_address", "%s is not an address of this node, the primary", a)
		case m.Primary != n.Hostname && own != "":
			p.addf(fieldPath+".primary_address", "%s is this replica's own address (%s), not the primary's", a, own)
		}
	}
	checkPort(p, fieldPath+".port", m.Port)
	for i, pat := range m.Exclude {
		f := fmt.Sprintf("%s.exclude[%d]", fieldPath, i)
		if msg := checkExcludePattern(pat); msg != "" {
			p.addf(f, "%s", msg)
		}
	}
	if m.SecretFile != "" {
		checkMirrorFile(p, fieldPath+".secret_file", m.SecretFile)
	}
	if t := m.TLS; t != nil {
		checkMirrorFile(p, fieldPath+".tls.ca", t.CA)
		checkMirrorFile(p, fieldPath+".tls.cert", t.Cert)
		checkMirrorFile(p, fieldPath+".tls.key", t.Key)
		if m.SecretFile != "" {
			p.addf(fieldPath+".secret_file", "set either secret_file or tls, not both")
		}
	}
	if d := m.ScanInterval.Duration; d != 0 && (d < time.Second || d > 24*time.Hour) {
		p.addf(fieldPath+".scan_interval", "%s is out of range; use 1s to 24h", d)
	}
	if d := m.BatchDelay.Duration; d < 0 || d > 10*time.Second {
		p.addf(fieldPath+".batch_delay", "%s is out of range; use 0 to 10s", d)
	}
}

// checkMirrorFile checks a required absolute, clean file path.
func checkMirrorFile(p *problems, field, name string) {
	switch {
	case name == "":
		p.addf(field, "required, an absolute path on the data partition like /data/mirror/...")
	case hasControl(name):
		p.addf(field, "%q holds control characters", name)
	case !path.IsAbs(name):
		p.addf(field, "%q must be an absolute path", name)
	case path.Clean(name) != name:
		p.addf(field, "%q is not clean; write %s", name, path.Clean(name))
	}
}

// checkExcludePattern checks one exclude pattern: not empty, no control
// characters, no "." or ".." elements, and valid for path.Match.
func checkExcludePattern(pat string) string {
	switch {
	case strings.TrimSpace(pat) == "":
		return "an empty pattern would match nothing"
	case hasControl(pat):
		return fmt.Sprintf("%q holds control characters", pat)
	}
	for _, el := range strings.Split(strings.Trim(pat, "/"), "/") {
		switch el {
		case "":
			return fmt.Sprintf("%q has an empty element (//)", pat)
		case ".", "..":
			return fmt.Sprintf("%q: %q elements are not allowed; patterns are relative to the web root", pat, el)
		}
		if el == "**" {
			continue
		}
		if _, err := path.Match(el, ""); err != nil {
			return fmt.Sprintf("%q: element %q is not a valid pattern", pat, el)
		}
	}
	return ""
}

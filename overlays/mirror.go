package overlays

// Mirror configures the web-root mirror on web nodes: every web node keeps
// its root equal to the primary's.
type Mirror struct {
	// Primary is the hostname of the web node whose root the others copy;
	// on the primary itself it is its own hostname.
	Primary string `yaml:"primary"`
	// Port is the mirror protocol's TCP port; 0 means DefaultMirrorPort.
	Port int `yaml:"port,omitempty"`
}

// DefaultMirrorPort is the mirror's port when none is set.
const DefaultMirrorPort = 8873

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

func (m *Mirror) validate(p *problems, path string, n *Node) {
	switch {
	case m.Primary == "":
		p.addf(path+".primary", "required, the hostname of the web node others copy from")
	case checkHostname(m.Primary) != "":
		p.addf(path+".primary", "%s", checkHostname(m.Primary))
	}
	checkPort(p, path+".port", m.Port)
}

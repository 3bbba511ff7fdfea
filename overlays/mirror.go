package overlays

// Mirror configures the web-root mirror on web nodes.
type Mirror struct {
	// Primary is the hostname of the web node whose root the others copy.
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

func (m *Mirror) validate(p *problems, path string, n *Node) {}

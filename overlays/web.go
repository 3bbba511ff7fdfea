package overlays

// Web configures the static web server on web nodes.
type Web struct {
	// Port is the HTTP port; 0 means DefaultWebPort.
	Port int `yaml:"port,omitempty"`
	// Root is the folder served; "" means DefaultWebRoot.
	Root string `yaml:"root,omitempty"`
}

// Defaults of the web section.
const (
	DefaultWebPort = 80
	DefaultWebRoot = "/data/www"
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

func (w *Web) validate(p *problems, path string, n *Node) {}

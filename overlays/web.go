package overlays

import "path"

// Web configures the static web server on web nodes.
type Web struct {
	// Port is the HTTP port; 0 means DefaultWebPort.
	Port int `yaml:"port,omitempty"`
	// Root is the absolute folder served; "" means DefaultWebRoot.
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

func (w *Web) validate(p *problems, fieldPath string, n *Node) {
	checkPort(p, fieldPath+".port", w.Port)
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
}

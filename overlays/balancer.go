package overlays

// Balancer configures the load balancer on lbmaster and lbbackup nodes.
type Balancer struct {
	// Port is the TCP port the balancer listens on; 0 means 80.
	Port int `yaml:"port,omitempty"`
	// Backends are the servers traffic is spread over.
	Backends []Backend `yaml:"backends"`
}

// Backend is one server behind the balancer.
type Backend struct {
	// Name is a label for logs and stats, usually the backend's hostname.
	Name string `yaml:"name"`
	// Address is host:port.
	Address string `yaml:"address"`
}

func (b *Balancer) validate(p *problems, path string, n *Node) {}

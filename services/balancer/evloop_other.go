//go:build !linux

package balancer

// listenHTTP opens the plain-HTTP frontend: the goroutine engine (the
// event loops are Linux-only).
func (b *Balancer) listenHTTP(cfg *Config) (frontend, error) {
	return b.listenH1(cfg)
}

package balancer

import (
	"crypto/tls"
	"fmt"
)

// certSet is the loaded TLS certificates; the first is the default.
type certSet struct {
	certs []*tls.Certificate
}

// loadCerts reads every certificate and key pair.
func loadCerts(files []CertFiles) (*certSet, error) {
	cs := &certSet{}
	for _, f := range files {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate %s: %w", f.Cert, err)
		}
		cs.certs = append(cs.certs, &c)
	}
	return cs, nil
}

// getCertificate chooses the certificate for the server name the client
// asked for (SNI), or the first one when none matches.
func (b *Balancer) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cs := b.certs.Load()
	if cs == nil || len(cs.certs) == 0 {
		return nil, fmt.Errorf("no TLS certificate loaded")
	}
	if hello.ServerName != "" {
		for _, c := range cs.certs {
			if hello.SupportsCertificate(c) == nil {
				return c, nil
			}
		}
	}
	return cs.certs[0], nil
}

package mirror

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"
)

// Identity is a node's TLS material for the mirror: its own certificate
// (naming its hostname) and the authority whose certificates it trusts.
// Primary and replicas authenticate each other with it (mutual TLS 1.3).
//
// IdentityFromSecret derives the authority from a cluster secret, so
// every web node that holds the secret trusts the others with no key
// files; LoadIdentity reads files, e.g. made when the images are built.
// Either way nothing secret is ever logged.
type Identity struct {
	// Cert is this node's certificate chain and private key.
	Cert tls.Certificate
	// Roots holds the authorities a peer's certificate must chain to.
	Roots *x509.CertPool
}

// MinSecretLen is the shortest cluster secret IdentityFromSecret accepts.
const MinSecretLen = 16

// alpn names the protocol inside TLS.
const alpn = "piimage-mirror/1"

// Certificates are valid from the epoch on: a Pi has no clock battery and
// may run in 1970 until NTP answers.
var (
	notBefore = time.Unix(0, 0).UTC()
	notAfter  = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// IdentityFromSecret derives the cluster authority's Ed25519 key from
// secret (HKDF-SHA256) and issues name a fresh certificate signed by it.
// Every node with the same secret trusts every other; a node that holds
// the secret can thus claim any name, so keep the secret on the data
// partition and use certificate files where that matters.
func IdentityFromSecret(secret []byte, name string) (*Identity, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("the mirror secret is %d bytes; at least %d are needed", len(secret), MinSecretLen)
	}
	seed, err := hkdf.Key(sha256.New, secret, []byte("piimage mirror"), "cluster authority v1", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("deriving the mirror authority: %w", err)
	}
	caKey := ed25519.NewKeyFromSeed(seed)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "piimage mirror authority"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("making the mirror authority: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	return issue(ca, caKey, name)
}

// issue makes name a certificate signed by ca.
func issue(ca *x509.Certificate, caKey ed25519.PrivateKey, name string) (*Identity, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("issuing the mirror certificate of %s: %w", name, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &Identity{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, Roots: roots}, nil
}

// ReadSecret reads a cluster secret file; surrounding white space is not
// part of the secret.
func ReadSecret(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the mirror's cluster secret %s is missing; provision it when building the image "+
			"(rootfs.Options.MirrorSecret, written to the data partition as mirror/secret) or write the same "+
			"random secret of at least 16 bytes to %s (mode 0600) on every web node: %w", file, file, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the mirror secret %s: %w", file, err)
	}
	return bytes.TrimSpace(b), nil
}

// LoadIdentity reads PEM files: the cluster authority's certificate, this
// node's certificate (chain) and its private key.
func LoadIdentity(caFile, certFile, keyFile string) (*Identity, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the mirror certificate %s: %w", certFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the mirror authority: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &Identity{Cert: cert, Roots: roots}, nil
}

func (id *Identity) check() error {
	if id == nil || len(id.Cert.Certificate) == 0 || id.Roots == nil {
		return errors.New("no TLS identity: set Config.Identity")
	}
	return nil
}

// serverConfig is the primary's side: TLS 1.3 only, and a client
// certificate from the cluster authority is required.
func (id *Identity) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.Roots,
		NextProtos:   []string{alpn},
	}
}

// clientConfig is a replica's side: the primary's certificate must chain
// to the authority and name primaryName.
func (id *Identity) clientConfig(primaryName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		RootCAs:      id.Roots,
		ServerName:   primaryName,
		NextProtos:   []string{alpn},
	}
}

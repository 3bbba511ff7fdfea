package admin

// Authentication of the admin API.
//
// A cluster has one admin credential, made by the builder (piimage keygen,
// or the first build) and kept with the cluster's signing key on the
// build machine: a random 256-bit bearer token and a self-signed TLS
// certificate (ECDSA P-256). Every image of the cluster carries, on its
// data partition under CredentialsDir: the certificate and its private key
// (tls.crt, tls.key) and the SHA-256 of the token (token.sha256), never the
// token itself. Updates do not touch the data partition, so the
// credential survives them.
//
// Clients connect with TLS 1.3 and pin the certificate's public key (Pin)
// instead of checking names: one certificate serves every node, whatever
// its address, and the node's clock (no RTC on a Pi) never matters. Each
// request carries "Authorization: Bearer TOKEN".

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Where the node keeps its admin credential, relative to the data
// partition (/data in PID 1 mode).
const (
	CredentialsDir = "piimage/admin"
	CertFile       = "tls.crt"
	KeyFile        = "tls.key"
	TokenHashFile  = "token.sha256"
)

// Credentials is what a node needs to serve the authenticated API.
type Credentials struct {
	Certificate tls.Certificate
	// TokenHash is the SHA-256 of the bearer token.
	TokenHash [32]byte
}

// LoadCredentials reads the credential files from dir.
func LoadCredentials(dir string) (*Credentials, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("loading the admin TLS certificate: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, TokenHashFile))
	if err != nil {
		return nil, fmt.Errorf("loading the admin token hash: %w", err)
	}
	c := &Credentials{Certificate: cert}
	if n, err := hex.Decode(c.TokenHash[:], []byte(strings.TrimSpace(string(b)))); err != nil || n != 32 {
		return nil, fmt.Errorf("loading the admin token hash: %s: want 64 hex digits", filepath.Join(dir, TokenHashFile))
	}
	return c, nil
}

// TLSConfig is the server side: TLS 1.3 with the cluster certificate.
func (c *Credentials) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Certificate},
	}
}

// Authorized reports whether r carries the cluster's bearer token.
func (c *Credentials) Authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], c.TokenHash[:]) == 1
}

// Middleware refuses requests without the bearer token (401).
func (c *Credentials) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.Authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="piimage admin"`)
			http.Error(w, "the admin API needs the cluster's token (Authorization: Bearer ...)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Pin is the SHA-256 of a certificate's public key (SubjectPublicKeyInfo),
// in hex: what clients compare.
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// ClientTLSConfig returns a client configuration that accepts exactly the
// server whose certificate's public key has pin.
func ClientTLSConfig(pin string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The name and chain checks are replaced by the pin check below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("admin API: the server sent no certificate")
			}
			if got := Pin(cs.PeerCertificates[0]); subtle.ConstantTimeCompare([]byte(got), []byte(pin)) != 1 {
				return fmt.Errorf("admin API: the server's certificate key %s is not the cluster's %s (wrong cluster keys, or someone in between)", got, pin)
			}
			return nil
		},
	}
}

// ClusterCredential is the build machine's copy of a cluster's admin
// credential.
type ClusterCredential struct {
	// Token is the bearer token (64 hex digits). Secret.
	Token string
	// CertPEM and KeyPEM are the TLS certificate and its private key
	// (the key is secret).
	CertPEM, KeyPEM []byte
}

// NewClusterCredential makes a random token and a self-signed ECDSA P-256
// certificate valid from 2000 to 9999 (nodes have no real-time clock).
func NewClusterCredential() (*ClusterCredential, error) {
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the admin TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "piimage admin API"},
		DNSNames:     []string{"piimage-admin"},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("making the admin TLS certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &ClusterCredential{
		Token:   hex.EncodeToString(tok[:]),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// NodeFiles returns the files a node gets, by name inside CredentialsDir.
func (c *ClusterCredential) NodeFiles() map[string][]byte {
	sum := sha256.Sum256([]byte(c.Token))
	return map[string][]byte{
		CertFile:      c.CertPEM,
		KeyFile:       c.KeyPEM,
		TokenHashFile: []byte(hex.EncodeToString(sum[:]) + "\n"),
	}
}

// Pin returns the certificate's pin.
func (c *ClusterCredential) Pin() (string, error) {
	blk, _ := pem.Decode(c.CertPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", errors.New("admin certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("admin certificate: %w", err)
	}
	return Pin(cert), nil
}

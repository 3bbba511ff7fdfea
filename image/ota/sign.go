package ota

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// signingContext is prepended to the manifest bytes before signing, so a
// signature made for anything else never verifies as a manifest's.
const signingContext = "piimage ota manifest v1\x00"

// Algorithm is the only signature algorithm.
const Algorithm = "ed25519"

// ErrBadSignature is returned by Verify when no trusted key made the
// signature.
var ErrBadSignature = errors.New("the update is not signed by a key this node trusts")

// Signature is the content of SignatureFile and of a payload's signature
// block: {"alg":"ed25519","key":"<key id>","sig":"<base64>"}.
type Signature struct {
	Algorithm string `json:"alg"`
	// KeyID names the public key (see KeyID); it only helps people and
	// error messages: Verify tries every trusted key.
	KeyID string `json:"key"`
	Sig   []byte `json:"sig"`
}

// Sign signs manifest bytes with priv.
func Sign(priv ed25519.PrivateKey, manifest []byte) Signature {
	return Signature{
		Algorithm: Algorithm,
		KeyID:     KeyID(priv.Public().(ed25519.PublicKey)),
		Sig:       ed25519.Sign(priv, signedMessage(manifest)),
	}
}

func signedMessage(manifest []byte) []byte {
	return append([]byte(signingContext), manifest...)
}

// Marshal returns the signature as one JSON line.
func (s Signature) Marshal() []byte {
	b, _ := json.Marshal(s)
	return append(b, '\n')
}

// ParseSignature decodes a signature strictly.
func ParseSignature(b []byte) (Signature, error) {
	var s Signature
	if len(b) > MaxSignatureSize {
		return s, fmt.Errorf("parsing signature: %d bytes, more than %d", len(b), MaxSignatureSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("parsing signature: %w", err)
	}
	if dec.More() {
		return s, errors.New("parsing signature: data after the JSON object")
	}
	if s.Algorithm != Algorithm {
		return s, fmt.Errorf("parsing signature: algorithm %q, want %s", s.Algorithm, Algorithm)
	}
	if len(s.Sig) != ed25519.SignatureSize {
		return s, fmt.Errorf("parsing signature: %d bytes, want %d", len(s.Sig), ed25519.SignatureSize)
	}
	if len(s.KeyID) > 64 {
		return s, errors.New("parsing signature: key id too long")
	}
	return s, nil
}

// Verify checks that one of keys signed manifest, and returns that key's
// id. It fails with an error wrapping ErrBadSignature otherwise.
func Verify(keys []ed25519.PublicKey, manifest []byte, sig Signature) (string, error) {
	if sig.Algorithm != Algorithm || len(sig.Sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: malformed %q signature", ErrBadSignature, sig.Algorithm)
	}
	msg := signedMessage(manifest)
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig.Sig) {
			return KeyID(k), nil
		}
	}
	return "", fmt.Errorf("%w (signed with key %q; trusted: %s)", ErrBadSignature, sig.KeyID, keyIDs(keys))
}

func keyIDs(keys []ed25519.PublicKey) string {
	if len(keys) == 0 {
		return "none"
	}
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(KeyID(k))
	}
	return b.String()
}

// KeyID is a public key's short name: the first 8 bytes of the SHA-256 of
// the key, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey makes a signing key pair from rand and returns it as PEM:
// the public key as PKIX "PUBLIC KEY", the private key as PKCS #8
// "PRIVATE KEY" (the forms openssl reads).
func GenerateKey(rand io.Reader) (pubPEM, privPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generating an ed25519 key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return MarshalPublicKey(pub), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey returns pub as a PEM "PUBLIC KEY" block.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePrivateKey reads a PEM "PRIVATE KEY" holding an ed25519 key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("parsing the signing key: no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing the signing key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parsing the signing key: a %T, want ed25519", k)
	}
	return priv, nil
}

// ParsePublicKeys reads one or more PEM "PUBLIC KEY" blocks of ed25519
// keys (several let a node accept a new key while the old one still signs).
func ParsePublicKeys(b []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("parsing public keys: a PEM %q block, want PUBLIC KEY", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing public keys: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("parsing public keys: a %T, want ed25519", k)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("parsing public keys: no PEM PUBLIC KEY block")
	}
	return keys, nil
}

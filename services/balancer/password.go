package balancer

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPasswordIterations is the PBKDF2 work factor of HashPassword.
const DefaultPasswordIterations = 100_000

// passwordHash is a parsed "pbkdf2-sha256$ITERATIONS$SALT$HASH".
type passwordHash struct {
	iter int
	salt []byte
	sum  []byte
}

// HashPassword returns the stats password hash to store in an overlay:
// "pbkdf2-sha256$ITERATIONS$SALT$HASH" with a random 16-byte salt and
// unpadded standard base64.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("making a salt: %w", err)
	}
	return hashPasswordWith(password, salt, DefaultPasswordIterations)
}

func hashPasswordWith(password string, salt []byte, iter int) (string, error) {
	sum, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	enc := base64.RawStdEncoding
	return "pbkdf2-sha256$" + strconv.Itoa(iter) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(sum), nil
}

func parsePasswordHash(s string) (passwordHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return passwordHash{}, errors.New("not pbkdf2-sha256$ITERATIONS$SALT$HASH")
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1000 || iter > 10_000_000 {
		return passwordHash{}, fmt.Errorf("iterations %q out of range", parts[1])
	}
	dec := func(s string) ([]byte, error) {
		return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	salt, err := dec(parts[2])
	if err != nil || len(salt) < 8 {
		return passwordHash{}, errors.New("salt is not base64 of at least 8 bytes")
	}
	sum, err := dec(parts[3])
	if err != nil || len(sum) < 16 {
		return passwordHash{}, errors.New("hash is not base64 of at least 16 bytes")
	}
	return passwordHash{iter: iter, salt: salt, sum: sum}, nil
}

// authenticator checks basic-auth credentials against a user and password
// hash in constant time. PBKDF2 is slow on purpose, so the digest of the
// last accepted credentials is remembered and compared first.
type authenticator struct {
	user string
	hash passwordHash

	mu       sync.Mutex
	accepted [sha256.Size]byte
	haveOK   bool
	slow     sync.Mutex // one PBKDF2 at a time
	lastSlow time.Time
	interval time.Duration // at least this between two PBKDF2 evaluations
}

// minSlowInterval spaces out PBKDF2 evaluations, so that guessing
// passwords cannot keep the node's CPUs busy.
const minSlowInterval = 100 * time.Millisecond

func newAuthenticator(user, hash string) (*authenticator, error) {
	h, err := parsePasswordHash(hash)
	if err != nil {
		return nil, err
	}
	return &authenticator{user: user, hash: h, interval: minSlowInterval}, nil
}

// check reports whether user and password are the configured ones.
func (a *authenticator) check(user, password string) bool {
	digest := sha256.Sum256([]byte(user + "\x00" + password))
	a.mu.Lock()
	ok, have := subtle.ConstantTimeCompare(digest[:], a.accepted[:]) == 1, a.haveOK
	a.mu.Unlock()
	if ok && have {
		return true
	}
	if !a.slow.TryLock() {
		return false
	}
	now := time.Now()
	if now.Sub(a.lastSlow) < a.interval {
		a.slow.Unlock()
		return false
	}
	a.lastSlow = now
	sum, err := pbkdf2.Key(sha256.New, password, a.hash.salt, a.hash.iter, len(a.hash.sum))
	a.slow.Unlock()
	if err != nil {
		return false
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.user))
	passOK := subtle.ConstantTimeCompare(sum, a.hash.sum)
	if userOK&passOK != 1 {
		return false
	}
	a.mu.Lock()
	a.accepted, a.haveOK = digest, true
	a.mu.Unlock()
	return true
}

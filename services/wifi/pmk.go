package wifi

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/piimage/piimage/overlays"
)

// PMKLen is the length of a WPA2 pairwise master key in bytes.
const PMKLen = 32

// DerivePMK derives the WPA2-PSK pairwise master key from a passphrase and
// the SSID: PBKDF2-HMAC-SHA1 with the SSID as salt, 4096 iterations, 32
// bytes (IEEE 802.11i-2004 annex H.4).
func DerivePMK(passphrase string, ssid []byte) ([]byte, error) {
	if len(passphrase) < 8 || len(passphrase) > 63 {
		return nil, fmt.Errorf("deriving the PMK: a passphrase has 8 to 63 characters, not %d", len(passphrase))
	}
	k, err := pbkdf2.Key(sha1.New, passphrase, ssid, 4096, PMKLen)
	if err != nil {
		return nil, fmt.Errorf("deriving the PMK: %w", err)
	}
	return k, nil
}

// PMK returns the pairwise master key of wlan0's overlay settings: the
// pmk field decoded, a 64-hex-digit psk decoded (the key itself, as
// wpa_supplicant reads it), or a passphrase psk derived with the SSID. It
// returns nil for an open network. Errors never hold the secret.
func PMK(i *overlays.Interface) ([]byte, error) {
	switch {
	case i.PMK != "":
		return decodeKey(i.PMK, "pmk")
	case len(i.PSK) == 2*PMKLen:
		return decodeKey(i.PSK, "psk")
	case i.PSK != "":
		return DerivePMK(i.PSK, []byte(i.SSID))
	}
	return nil, nil
}

func decodeKey(s, field string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil || len(k) != PMKLen {
		return nil, errors.New("wlan0's " + field + " is not 64 hex digits")
	}
	return k, nil
}

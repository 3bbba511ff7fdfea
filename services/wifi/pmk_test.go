package wifi

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
)

// TestDerivePMK checks PBKDF2-HMAC-SHA1(passphrase, SSID, 4096, 32) against
// the first two test vectors of IEEE 802.11i-2004 annex H.4, and at the
// longest passphrase and SSID against Python's hashlib.pbkdf2_hmac.
func TestDerivePMK(t *testing.T) {
	tests := []struct{ pass, ssid, want string }{
		{"password", "IEEE", ieeePMK},
		{"ThisIsAPassword", "ThisIsASSID", "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", "2d43d0dabfdd635377172efa1fc4b4b87dbfc4219193909ded9a7cfb89a3097b"},
	}
	for _, tt := range tests {
		got, err := DerivePMK(tt.pass, []byte(tt.ssid))
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("DerivePMK(%q, %q) = %x, want %s", tt.pass, tt.ssid, got, tt.want)
		}
	}
	for _, bad := range []string{"short", strings.Repeat("x", 64)} {
		if _, err := DerivePMK(bad, []byte("IEEE")); err == nil {
			t.Errorf("DerivePMK of a %d-character passphrase: no error", len(bad))
		} else if strings.Contains(err.Error(), bad) {
			t.Errorf("the error shows the passphrase: %v", err)
		}
	}
}

func TestPMKFromOverlay(t *testing.T) {
	tests := []struct {
		name string
		i    overlays.Interface
		want string // hex; "" for nil
		err  bool
	}{
		{"passphrase", overlays.Interface{SSID: "IEEE", PSK: "password"}, ieeePMK, false},
		{"pmk", overlays.Interface{SSID: "IEEE", PMK: strings.ToUpper(ieeePMK)}, ieeePMK, false},
		{"64 hex psk is the key", overlays.Interface{SSID: "other", PSK: ieeePMK}, ieeePMK, false},
		{"open", overlays.Interface{SSID: "cafe"}, "", false},
		{"bad pmk", overlays.Interface{SSID: "x", PMK: strings.Repeat("z", 64)}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PMK(&tt.i)
			if (err != nil) != tt.err {
				t.Fatalf("err %v", err)
			}
			if err != nil && strings.Contains(err.Error(), tt.i.PMK) {
				t.Errorf("the error shows the key: %v", err)
			}
			if hex.EncodeToString(got) != tt.want || (tt.want == "") != (got == nil) {
				t.Errorf("got %x, want %q", got, tt.want)
			}
		})
	}
}

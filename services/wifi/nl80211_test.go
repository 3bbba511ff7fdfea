package wifi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"syscall"
	"testing"
)

// The golden messages below are little-endian, as on the Pi and on x86.
func requireLittleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are little-endian")
	}
}

// unhex decodes annotated hex: everything after "//" on a line, and
// spaces, are ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, l := range strings.Split(s, "\n") {
		l, _, _ = strings.Cut(l, "//")
		clean.WriteString(strings.Join(strings.Fields(l), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ieeePMK is IEEE 802.11i-2004 H.4's first vector: passphrase "password",
// SSID "IEEE".
const ieeePMK = "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"

func TestMessagesGolden(t *testing.T) {
	requireLittleEndian(t)
	pmk, _ := hex.DecodeString(ieeePMK)
	tests := []struct {
		name string
		msg  genlMsg
		want string
	}{
		{"CONNECT WPA2-PSK with the PMK", connectMsg(0x22, 7, 3, ConnectParams{SSID: []byte("home"), PMK: pmk}), `
94000000 2200 0500 07000000 00000000 // nlmsghdr: 148 bytes, family 0x22, REQUEST|ACK, seq 7, port 0
2e 01 0000                           // genlmsghdr: CONNECT, version 1
0800 0300 03000000                   // IFINDEX 3
0800 3400 686f6d65                   // SSID "home"
0800 3500 00000000                   // AUTH_TYPE open system
0400 4600                            // PRIVACY
0800 4b00 02000000                   // WPA_VERSIONS 2
0800 4900 04ac0f00                   // CIPHER_SUITES_PAIRWISE [CCMP 00-0f-ac:4]
0800 4a00 04ac0f00                   // CIPHER_SUITE_GROUP CCMP
0800 4c00 02ac0f00                   // AKM_SUITES [PSK 00-0f-ac:2]
1a00 2a00                            // IE, 22 bytes:
  30 14 0100 000fac04                //   RSN, version 1, group CCMP
  0100 000fac04 0100 000fac02 0000   //   pairwise CCMP, AKM PSK, capabilities 0
  0000                               //   padding
0400 4400                            // CONTROL_PORT
2400 fe00                            // PMK, 32 bytes
  f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e
`},
		{"CONNECT open", connectMsg(0x22, 8, 3, ConnectParams{SSID: []byte("cafe!")}), `
30000000 2200 0500 08000000 00000000 // 48 bytes, seq 8
2e 01 0000                           // CONNECT
0800 0300 03000000                   // IFINDEX 3
0900 3400 6361666521 000000          // SSID "cafe!", 3 bytes of padding
0800 3500 00000000                   // AUTH_TYPE open system: nothing else
`},
		{"REQ_SET_REG", regMsg(0x22, 9, "DE"), `
1c000000 2200 0500 09000000 00000000 // 28 bytes
1b 01 0000                           // REQ_SET_REG (27), not SET_REG (26)
0700 2100 444500 00                  // REG_ALPHA2 "DE\0", padded
`},
		{"DISCONNECT", disconnectMsg(0x22, 10, 3), `
24000000 2200 0500 0a000000 00000000
30 01 0000                           // DISCONNECT (48)
0800 0300 03000000                   // IFINDEX 3
0600 3600 0300 0000                  // REASON_CODE 3 (leaving), padded
`},
		{"GET_INTERFACE", interfaceMsg(0x22, 11, 3), `
1c000000 2200 0500 0b000000 00000000
05 01 0000                           // GET_INTERFACE
0800 0300 03000000                   // IFINDEX 3
`},
		{"GET_WIPHY split dump", wiphyMsg(0x22, 12, 1), `
20000000 2200 0503 0c000000 00000000 // REQUEST|ACK|DUMP (0x305)
01 01 0000                           // GET_WIPHY
0800 0100 01000000                   // WIPHY 1
0400 ae00                            // SPLIT_WIPHY_DUMP (174)
`},
		{"GET_STATION dump", stationMsg(0x22, 13, 3), `
1c000000 2200 0503 0d000000 00000000
11 01 0000                           // GET_STATION (17)
0800 0300 03000000                   // IFINDEX 3
`},
		{"CTRL_CMD_GETFAMILY", familyMsg(1), `
20000000 1000 0500 01000000 00000000 // to the controller (0x10)
03 01 0000                           // GETFAMILY
0c00 0200 6e6c383032313100           // FAMILY_NAME "nl80211\0"
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.msg.marshal()
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("\n got %x\nwant %x", got, want)
			}
		})
	}
}

// TestConnectOpenHasNoSecurity: an open CONNECT carries no security
// attribute, and the WPA2 one never WANT_1X_4WAY_HS.
func TestConnectAttributes(t *testing.T) {
	open, err := parseAttrs(connectMsg(1, 1, 1, ConnectParams{SSID: []byte("x")}).marshal()[nlmsgHdrLen+genlHdrLen:])
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []uint16{attrPrivacy, attrPMK, attrAKMSuites, attrCipherPairwise, attrIE, attrControlPort} {
		if _, ok := open[a]; ok {
			t.Errorf("open CONNECT has attribute %d", a)
		}
	}
	wpa, err := parseAttrs(connectMsg(1, 1, 1, ConnectParams{SSID: []byte("x"), PMK: make([]byte, 32)}).marshal()[nlmsgHdrLen+genlHdrLen:])
	if err != nil {
		t.Fatal(err)
	}
	const want1X4WayHS = 257
	if _, ok := wpa[want1X4WayHS]; ok {
		t.Error("WPA2-PSK CONNECT has WANT_1X_4WAY_HS")
	}
	if len(wpa[attrPMK]) != 32 {
		t.Errorf("PMK attribute has %d bytes", len(wpa[attrPMK]))
	}
}

func TestParseFamily(t *testing.T) {
	requireLittleEndian(t)
	// The controller's answer, trimmed to what is read: id, name and two
	// multicast groups.
	payload := unhex(t, `
0600 0100 2200 0000                  // FAMILY_ID 0x22
0c00 0200 6e6c383032313100           // FAMILY_NAME "nl80211"
3800 0780                            // MCAST_GROUPS (nested)
  1800 0100                          //   group 1
    0800 0200 05000000               //     ID 5
    0b00 0100 636f6e66696700 00      //     NAME "config"
  1c00 0200                          //   group 2
    0800 0200 08000000               //     ID 8
    0900 0100 6d6c6d6500 000000      //     NAME "mlme"
    0400 0000                        //     (an empty attribute, skipped)
`)
	f, err := parseFamily(payload)
	if err != nil {
		t.Fatal(err)
	}
	if f.ID != 0x22 || f.Groups["mlme"] != 8 || f.Groups["config"] != 5 || len(f.Groups) != 2 {
		t.Errorf("got %+v", f)
	}
	if _, err := parseFamily(unhex(t, "0c00 0200 6e6c383032313100")); err == nil {
		t.Error("no error without a family id")
	}
}

// Kernel notifications, as nl80211 multicasts them to the mlme group.
const (
	goldenConnected = `
40000000 2200 0000 00000000 00000000 // 64 bytes, seq 0
2e 01 0000                           // CONNECT
0800 0100 00000000                   // WIPHY 0
0800 0300 04000000                   // IFINDEX 4
0a00 0600 020000000100 0000          // MAC 02:00:00:00:01:00
0600 4800 0000 0000                  // STATUS_CODE 0
0800 4e00 00000000                   // REQ_IE (ignored)
`
	goldenNotFound = `
30000000 2200 0000 00000000 00000000 // 48 bytes
2e 01 0000                           // CONNECT
0800 0300 04000000                   // IFINDEX 4
0600 4800 0100 0000                  // STATUS_CODE 1
0400 4100                            // TIMED_OUT
0800 f800 01000000                   // TIMEOUT_REASON scan
`
	goldenDisconnected = `
28000000 2200 0000 00000000 00000000 // 40 bytes
30 01 0000                           // DISCONNECT
0800 0300 04000000                   // IFINDEX 4
0600 3600 0f00 0000                  // REASON_CODE 15
0400 4700                            // DISCONNECTED_BY_AP
`
)

func TestParseEvents(t *testing.T) {
	requireLittleEndian(t)
	other := unhex(t, `
14000000 2300 0000 00000000 00000000 // another family
2e 01 0000
`)
	scan := unhex(t, `
1c000000 2200 0000 00000000 00000000 // nl80211 but another command (TRIGGER_SCAN)
21 01 0000
0800 0300 04000000
`)
	b := append(append(append(append(unhex(t, goldenConnected), other...), unhex(t, goldenNotFound)...), scan...), unhex(t, goldenDisconnected)...)
	evs, err := parseEvents(b, 0x22)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("got %d events: %+v", len(evs), evs)
	}
	if e := evs[0]; e.Cmd != cmdConnect || e.Ifindex != 4 || e.BSSID.String() != "02:00:00:00:01:00" || e.Status != 0 || e.TimedOut {
		t.Errorf("connected: %+v", e)
	}
	if ev := evs[0].event(); ev.Kind != EvConnected || ev.BSSID.String() != "02:00:00:00:01:00" {
		t.Errorf("connected: event %+v", ev)
	}
	if e := evs[1]; !e.TimedOut || e.TimeoutReason != timeoutScan {
		t.Errorf("not found: %+v", e)
	}
	if ev := evs[1].event(); ev.Kind != EvConnectFailed || !strings.Contains(ev.Err.Error(), "network not found") {
		t.Errorf("not found: event %+v", ev)
	}
	if e := evs[2]; e.Cmd != cmdDisconnect || e.Reason != 15 || !e.ByAP {
		t.Errorf("disconnected: %+v", e)
	}
	if ev := evs[2].event(); ev.Kind != EvDisconnected || !strings.Contains(ev.Err.Error(), "by the access point: reason 15 (4-way handshake timeout: wrong PSK?)") {
		t.Errorf("disconnected: event %v", ev.Err)
	}
	// A CONNECT without a status code is never a success.
	noStatus := unhex(t, `
1c000000 2200 0000 00000000 00000000
2e 01 0000
0800 0300 04000000
`)
	evs, err = parseEvents(noStatus, 0x22)
	if err != nil || len(evs) != 1 || evs[0].event().Kind != EvConnectFailed {
		t.Errorf("CONNECT without status: %+v, %v", evs, err)
	}
	// Truncated: what came before the damage is kept.
	evs, err = parseEvents(append(unhex(t, goldenConnected), 1, 2, 3), 0x22)
	if err == nil || len(evs) != 1 {
		t.Errorf("truncated: %d events, %v", len(evs), err)
	}
}

func TestParseAnswers(t *testing.T) {
	requireLittleEndian(t)
	iface := unhex(t, `
0800 0300 04000000                   // IFINDEX 4
0a00 0400 776c616e3000 0000          // IFNAME "wlan0"
0800 0100 02000000                   // WIPHY 2
`)
	if w, err := parseWiphy(iface); err != nil || w != 2 {
		t.Errorf("parseWiphy = %d, %v", w, err)
	}
	if _, err := parseWiphy(iface[:8]); err == nil {
		t.Error("parseWiphy without WIPHY: no error")
	}
	// EXT_FEATURES: bit 15 (4WAY_HANDSHAKE_STA_PSK) is byte 1, bit 7.
	withOffload := unhex(t, "0800 d900 00800000")
	without := unhex(t, "0800 d900 ff7fffff")
	if !hasExtFeature(extFeatures(withOffload), extFeature4WayHandshakeStaPSK) {
		t.Error("offload bit not found")
	}
	if hasExtFeature(extFeatures(without), extFeature4WayHandshakeStaPSK) {
		t.Error("offload bit found in a bitmap without it")
	}
	if hasExtFeature(nil, extFeature4WayHandshakeStaPSK) || hasExtFeature([]byte{0xff}, 15) {
		t.Error("short bitmaps have the bit")
	}
	station := unhex(t, `
0800 0300 04000000                   // IFINDEX 4
1400 1500                            // STA_INFO (nested)
  0800 0100 10000000                 //   INACTIVE_TIME
  0500 0700 c1 000000                //   SIGNAL -63 dBm
`)
	if s, ok := parseSignal(station); !ok || s != -63 {
		t.Errorf("parseSignal = %d, %v", s, ok)
	}
	if _, ok := parseSignal(iface); ok {
		t.Error("parseSignal found a signal without STA_INFO")
	}
}

func TestParseError(t *testing.T) {
	requireLittleEndian(t)
	// An extended ACK of a refused CONNECT: EINVAL, the request's header
	// only (capped), then the kernel's message.
	b := unhex(t, `
40000000 0200 0003 07000000 00000000 // 64 bytes, NLMSG_ERROR, CAPPED|ACK_TLVS
eaffffff                             // -22 (EINVAL)
94000000 2200 0500 07000000 00000000 // the request's header only
1a00 0100                            // NLMSGERR_ATTR_MSG, 22 bytes:
  6f66666c6f6164206e6f7420737570706f7274656400 // "offload not supported\0"
  0000                               // padding
`)
	msgs, err := splitMessages(b)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("split: %v, %d", err, len(msgs))
	}
	e, err := parseError(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.Errno != int32(syscall.EINVAL) || e.Msg != "offload not supported" {
		t.Errorf("got %+v", e)
	}
	ack := unhex(t, "24000000 0200 0001 07000000 00000000 00000000 14000000 2200 0500 07000000 00000000")
	msgs, _ = splitMessages(ack)
	if e, err := parseError(msgs[0]); err != nil || e.Errno != 0 {
		t.Errorf("ACK: %+v, %v", e, err)
	}
}

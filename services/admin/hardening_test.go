package admin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestStatusFirewallAndTime(t *testing.T) {
	s := testServer(&fakeServices{})
	_, body := get(t, s.Handler(), "GET", "/status", "192.168.1.5:1234")
	if strings.Contains(body, `"firewall"`) || strings.Contains(body, `"time"`) {
		t.Errorf("unreported firewall and time show up:\n%s", body)
	}
	synced := time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC)
	s.Firewall = func() *FirewallStatus {
		return &FirewallStatus{Installed: true, Counters: map[string]PacketCount{"dropped": {Packets: 7, Bytes: 420}}}
	}
	s.Time = func() *TimeStatus {
		return &TimeStatus{Trusted: false, Servers: []string{"192.168.1.1:123"}, LastError: "no answer"}
	}
	_, body = get(t, s.Handler(), "GET", "/status", "192.168.1.5:1234")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Firewall == nil || !st.Firewall.Installed || st.Firewall.Counters["dropped"].Packets != 7 {
		t.Errorf("firewall = %+v", st.Firewall)
	}
	if st.Time == nil || st.Time.Trusted || st.Time.LastError != "no answer" || !st.Time.LastSync.IsZero() {
		t.Errorf("time = %+v", st.Time)
	}
	if !strings.Contains(body, `"trusted": false`) || strings.Contains(body, "last_sync") {
		t.Errorf("an untrusted time must say trusted false and have no last_sync:\n%s", body)
	}
	s.Time = func() *TimeStatus { return &TimeStatus{Trusted: true, LastSync: synced} }
	_, body = get(t, s.Handler(), "GET", "/status", "192.168.1.5:1234")
	if !strings.Contains(body, `"last_sync": "2026-11-22T05:30:00Z"`) {
		t.Errorf("last_sync missing:\n%s", body)
	}
}

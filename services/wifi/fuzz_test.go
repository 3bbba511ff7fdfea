package wifi

import (
	"testing"
)

// FuzzParseEvents: whatever the kernel (or anyone able to write to the
// socket) sends, parsing never panics, and an event is a success only for
// a CONNECT with status 0 and no timeout.
func FuzzParseEvents(f *testing.F) {
	for _, g := range []string{goldenConnected, goldenNotFound, goldenDisconnected} {
		f.Add(unhex(f, g))
	}
	f.Add(append(unhex(f, goldenConnected), unhex(f, goldenDisconnected)...))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := parseEvents(b, 0x22)
		for _, e := range evs {
			ev := e.event()
			if ev.Kind == EvConnected && (e.Cmd != cmdConnect || e.Status != 0 || e.TimedOut) {
				t.Errorf("%+v counts as connected", e)
			}
			if ev.Kind != EvConnected && ev.Err == nil {
				t.Errorf("%+v: a failure without an error", e)
			}
		}
		msgs, _ := splitMessages(b)
		for _, m := range msgs {
			parseError(m)
			if _, p, err := genlPayload(m); err == nil {
				parseFamily(p)
				parseWiphy(p)
				parseSignal(p)
				extFeatures(p)
			}
		}
	})
}

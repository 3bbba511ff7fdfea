package timesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// script answers each server with a fixed sample or error.
type script map[string]struct {
	s   Sample
	err error
}

func (sc script) query(ctx context.Context, server string) (Sample, error) {
	r, ok := sc[server]
	if !ok {
		return Sample{}, fmt.Errorf("no answer")
	}
	return r.s, r.err
}

var quiet = slog.New(slog.DiscardHandler)

func TestRound(t *testing.T) {
	boot := time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC)
	far := 56 * 365 * 24 * time.Hour
	tests := []struct {
		name        string
		servers     []string
		answers     script
		settable    bool
		setErr      error
		wantTrusted bool
		wantSet     time.Duration // expected step, 0 for none
		wantNext    time.Duration
		wantErr     string
	}{
		{"PID 1 steps a 1970 clock", []string{"a"}, script{"a": {s: Sample{Offset: far, Delay: time.Millisecond}}},
			true, nil, true, far, time.Hour, ""},
		{"PID 1 leaves a small offset", []string{"a"}, script{"a": {s: Sample{Offset: 50 * time.Millisecond}}},
			true, nil, true, 0, time.Hour, ""},
		{"the best of two by delay", []string{"a", "b"}, script{
			"a": {s: Sample{Offset: 10 * time.Second, Delay: 80 * time.Millisecond}},
			"b": {s: Sample{Offset: 9 * time.Second, Delay: 2 * time.Millisecond}}},
			true, nil, true, 9 * time.Second, time.Hour, ""},
		{"one server down", []string{"a", "b"}, script{"b": {s: Sample{Offset: time.Second}}},
			true, nil, true, time.Second, time.Hour, ""},
		{"process mode trusts a close clock", []string{"a"}, script{"a": {s: Sample{Offset: 300 * time.Millisecond}}},
			false, nil, true, 0, time.Hour, ""},
		{"process mode does not trust a far clock", []string{"a"}, script{"a": {s: Sample{Offset: far}}},
			false, nil, false, 0, time.Hour, "may not set it"},
		{"setting fails", []string{"a"}, script{"a": {s: Sample{Offset: far}}},
			true, errors.New("EPERM"), false, 0, time.Hour, "setting the clock: EPERM"},
		{"no answer", []string{"a"}, script{}, true, nil, false, 0, time.Second, "a: no answer"},
		{"kiss slows down", []string{"a"}, script{"a": {err: &KissError{Code: "RATE"}}}, true, nil, false, 0, MaxBackoff, "RATE"},
		{"no servers", nil, script{}, true, nil, false, 0, time.Second, "no NTP server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: boot, err: tt.setErr}
			s := &Syncer{Servers: tt.servers, Interval: time.Hour, Clock: clock, SetClock: tt.settable, Query: tt.answers.query, Log: quiet}
			if next := s.Round(context.Background()); next != tt.wantNext {
				t.Errorf("next round in %v, want %v", next, tt.wantNext)
			}
			st := s.State()
			if st.Trusted != tt.wantTrusted {
				t.Errorf("trusted = %v, want %v (%+v)", st.Trusted, tt.wantTrusted, st)
			}
			select {
			case <-s.Trusted():
				if !tt.wantTrusted {
					t.Error("Trusted() closed")
				}
			default:
				if tt.wantTrusted {
					t.Error("Trusted() not closed")
				}
			}
			switch {
			case tt.wantSet == 0 && len(clock.sets) > 0:
				t.Errorf("clock set to %v, want untouched", clock.sets)
			case tt.wantSet != 0 && (len(clock.sets) != 1 || clock.sets[0].Sub(boot) != tt.wantSet):
				t.Errorf("clock set to %v, want boot+%v", clock.sets, tt.wantSet)
			}
			if tt.wantErr == "" && st.LastError != "" || !strings.Contains(st.LastError, tt.wantErr) {
				t.Errorf("last error %q, want ...%s...", st.LastError, tt.wantErr)
			}
			if st.Settable != tt.settable {
				t.Errorf("settable %v", st.Settable)
			}
		})
	}
}

// TestBackoff: failed rounds wait 1, 2, 4 ... 64 s; a good one resets it;
// Run stops with its context.
func TestBackoff(t *testing.T) {
	answers := script{}
	s := &Syncer{Servers: []string{"a"}, Interval: 10 * time.Minute, Clock: &fakeClock{now: time.Unix(0, 0)}, SetClock: true, Query: answers.query, Log: quiet}
	var waits []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	s.Run(ctx, func(ctx context.Context, d time.Duration) {
		waits = append(waits, d)
		switch len(waits) {
		case 8:
			answers["a"] = struct {
				s   Sample
				err error
			}{s: Sample{Offset: time.Hour}}
		case 9:
			delete(answers, "a")
		case 10:
			cancel()
		}
	})
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 64, 600, 1}
	for i := range want {
		want[i] *= time.Second
	}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if !s.State().Trusted {
		t.Error("a good round did not make the time trusted (nor does a later failure undo it)")
	}
}

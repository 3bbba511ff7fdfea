package ota

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	imgota "github.com/piimage/piimage/image/ota"
)

func apply(t *testing.T, a *Agent, payload []byte) (*Result, error) {
	t.Helper()
	return a.Apply(context.Background(), bytes.NewReader(payload), nil)
}

func TestApplyWritesTheOtherSlot(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k1", key, nil)
	v2 := makeRelease(t, "v2", "k2", key, nil)
	c := newCardState(t, v1, nil).mount(-1)
	res, err := apply(t, c.agent("a", key), v2.payload(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Slot != "b" || res.Version != "v2" || res.Previous != "v1" || res.TryBoot {
		t.Errorf("result = %+v", res)
	}
	if res.Received != v2.m.TotalSize() || res.Copied != 0 || res.Kept != 0 {
		t.Errorf("received %d copied %d kept %d, want %d received", res.Received, res.Copied, res.Kept, v2.m.TotalSize())
	}
	s := c.state()
	if v, err := bootable(s, "b"); err != nil || v != "v2" {
		t.Fatalf("slot b: %q, %v", v, err)
	}
	if v, err := bootable(s, "a"); err != nil || v != "v1" {
		t.Fatalf("slot a was harmed: %q, %v", v, err)
	}
	// Without tryboot, config.txt names the trial slot; tryboot.txt still
	// names the running one.
	if firmware(s, false) != "b" {
		t.Errorf("firmware boots %s, want b", firmware(s, false))
	}
	if got, _ := imgota.ConfigSlot(string(s.boot.files[TryBoot])); got != "a" {
		t.Errorf("tryboot.txt names %s", got)
	}
	if cl := string(s.boot.files["slot-b/cmdline.txt"]); !strings.Contains(cl, "root=PARTUUID=1234abcd-03 ") {
		t.Errorf("slot-b/cmdline.txt = %q", cl)
	}
	st, err := ParseState(s.boot.files[StateFile])
	if err != nil || st.Trial == nil || st.Trial.Slot != "b" || st.Trial.Previous != "a" || st.Trial.Boots != 0 || st.Trial.ID != res.ID {
		t.Errorf("state = %+v, %v", st.Trial, err)
	}
	for name := range s.boot.files {
		if strings.HasSuffix(name, tempSuffix) {
			t.Errorf("temporary file left: %s", name)
		}
	}
	if s.boot.files["node.yaml"] == nil {
		t.Error("node.yaml is gone")
	}
}

func TestApplyTryBoot(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k1", key, nil)
	v2 := makeRelease(t, "v2", "k1", key, func(m *imgota.Manifest) { m.TryBoot = true })
	c := newCardState(t, v1, nil).mount(-1)
	res, err := apply(t, c.agent("a", key), v2.payload(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	s := c.state()
	if !res.TryBoot || firmware(s, false) != "a" || firmware(s, true) != "b" {
		t.Errorf("tryboot %v: config.txt boots %s, tryboot.txt %s; want a and b", res.TryBoot, firmware(s, false), firmware(s, true))
	}
}

// TestApplyReuses sends only what changed: the unchanged kernel is copied
// from the running slot, then kept in the slot that already has it.
func TestApplyReuses(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k", key, nil)
	v2 := makeRelease(t, "v2", "k", key, nil)
	v3 := makeRelease(t, "v3", "k", key, nil)
	c := newCardState(t, v1, nil).mount(-1)
	a := c.agent("a", key)
	have := map[imgota.Digest]bool{}
	for _, d := range a.Have() {
		have[d] = true
	}
	omit := func(f imgota.File) bool { return have[f.SHA256] }
	res, err := apply(t, a, v2.payload(t, omit))
	if err != nil {
		t.Fatal(err)
	}
	unchanged := v2.m.TotalSize() - v2.m.Root.Size - v2.m.Files[3].Size
	if res.Copied != unchanged || res.Received != v2.m.Root.Size+v2.m.Files[3].Size {
		t.Errorf("received %d, copied %d; want %d copied", res.Received, res.Copied, unchanged)
	}
	if v, err := bootable(c.state(), "b"); err != nil || v != "v2" {
		t.Fatalf("slot b: %q, %v", v, err)
	}
	// Boot v2, commit, then send v3 into slot a, which has the kernel.
	b := c.agent("b", key)
	if d, _, _, err := b.OnBoot(); d != InTrial || err != nil {
		t.Fatalf("Boot = %v, %v", d, err)
	}
	st, _ := readState(c.boot)
	if err := b.Commit(*st.Trial); err != nil {
		t.Fatal(err)
	}
	res, err = apply(t, b, v3.payload(t, omit))
	if err != nil {
		t.Fatal(err)
	}
	if res.Slot != "a" || res.Kept != unchanged || res.Copied != 0 {
		t.Errorf("slot %s: kept %d copied %d, want %d kept", res.Slot, res.Kept, res.Copied, unchanged)
	}
	if v, err := bootable(c.state(), "a"); err != nil || v != "v3" {
		t.Fatalf("slot a: %q, %v", v, err)
	}
	// A "have" for bytes the node lacks fails, and the card still boots.
	c2 := newCardState(t, v1, nil).mount(-1)
	v4 := makeRelease(t, "v4", "new kernel", key, nil)
	if _, err := apply(t, c2.agent("a", key), v4.payload(t, func(f imgota.File) bool { return f.Path == "vmlinuz" })); err == nil || !strings.Contains(err.Error(), "send the whole payload") {
		t.Errorf("Apply with a missing have = %v", err)
	}
	if firmware(c2.state(), false) != "a" {
		t.Error("a failed update moved config.txt")
	}
}

// TestApplyRootDelta sends the root as a delta against the running root.
func TestApplyRootDelta(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k", key, nil)
	same := makeReleaseRoot(t, "v2", "k", "root v1 ", key, nil) // v2 with v1's root bytes
	other := makeRelease(t, "v3", "k", key, nil)
	for _, tc := range []struct {
		name             string
		r                release
		received, copied int64
	}{
		{"unchanged root", same, same.m.Files[3].Size, same.m.Root.Size},
		{"changed root", other, other.m.Root.Size + other.m.Files[3].Size, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCardState(t, v1, nil).mount(-1)
			a := c.agent("a", key)
			size, base, err := a.RootChunks()
			if err != nil || size != v1.m.Root.Size || len(base) != 1 {
				t.Fatalf("RootChunks = %d %d %v", size, len(base), err)
			}
			omit := func(f imgota.File) bool { return f.Path != "release.json" }
			res, err := apply(t, a, tc.r.deltaPayload(t, omit, base))
			if err != nil {
				t.Fatal(err)
			}
			if res.Received != tc.received || res.Copied != tc.copied+tc.r.m.TotalSize()-tc.r.m.Root.Size-tc.r.m.Files[3].Size {
				t.Errorf("received %d copied %d, want %d received and the root's %d copied", res.Received, res.Copied, tc.received, tc.copied)
			}
			if v, err := bootable(c.state(), "b"); err != nil || v != tc.r.m.Version {
				t.Errorf("slot b: %q %v", v, err)
			}
		})
	}
}

// TestRefusedBeforeWriting checks that every refusal happens before the
// first write to the card.
func TestRefusedBeforeWriting(t *testing.T) {
	key, other := testKey(1), testKey(2)
	v1 := makeRelease(t, "v1", "k1", key, nil)
	v2 := makeRelease(t, "v2", "k2", key, nil)
	good := v2.payload(t, nil)
	wrongKey := v2
	wrongKey.sig = imgota.Sign(other, v2.mb)
	pi4 := makeRelease(t, "v2", "k2", key, func(m *imgota.Manifest) { m.Board = "pi4" })
	huge := makeRelease(t, "v2", "k2", key, func(m *imgota.Manifest) { m.Root.Size = 1 << 20 })
	tampered := bytes.Replace(good, []byte(`"version": "v2"`), []byte(`"version": "v9"`), 1)
	unsigned := bytes.Replace(good, v2.sig.Marshal(), bytes.Repeat([]byte(" "), len(v2.sig.Marshal())), 1)

	trial := newCardState(t, v1, nil)
	trial.boot.files[StateFile] = State{Trial: &Trial{ID: "x", Slot: "b", Previous: "a", Version: "v9", MaxBoots: 3}}.Marshal()
	onB := newCardState(t, v1, nil)
	cfgB, _ := imgota.ConfigFor(testConfig, "b")
	onB.boot.files[ConfigFile] = []byte(cfgB)

	for _, tc := range []struct {
		name    string
		card    cardState
		payload []byte
		want    string
	}{
		{"wrong key", newCardState(t, v1, nil), wrongKey.payload(t, nil), "not signed by a key this node trusts"},
		{"tampered manifest", newCardState(t, v1, nil), tampered, "not signed by a key this node trusts"},
		{"unsigned", newCardState(t, v1, nil), unsigned, "parsing signature"},
		{"other board", newCardState(t, v1, nil), pi4.payload(t, nil), "for board pi4"},
		{"too big", newCardState(t, v1, nil), header(t, huge), "root filesystem is 1048576 bytes"},
		{"trial in progress", trial, good, "on trial"},
		{"config names the other slot", onB, good, "boots slot \"b\""},
		{"not a payload", newCardState(t, v1, nil), []byte("GET / HTTP/1.1\r\n\r\n"), "bad magic"},
		{"empty", newCardState(t, v1, nil), nil, "payload header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.card.mount(-1)
			_, err := apply(t, c.agent("a", key), tc.payload)
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want a refusal with %q", err, tc.want)
			}
			if c.p.spent != 0 {
				t.Errorf("%d units written before the refusal", c.p.spent)
			}
		})
	}
}

// TestApplyBadData sends data that does not match the signed hashes: the
// update fails, and the card boots the old slot.
func TestApplyBadData(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k1", key, nil)
	v2 := makeRelease(t, "v2", "k2", key, nil)
	for _, tc := range []struct {
		name string
		edit func(release) release
		want string
	}{
		{"root", func(r release) release { r.root = bytes.ToUpper(r.root); return r }, "root filesystem does not match"},
		{"kernel", func(r release) release {
			f := map[string][]byte{}
			for k, v := range r.files {
				f[k] = v
			}
			f["vmlinuz"] = bytes.ToLower(f["vmlinuz"])
			r.files = f
			return r
		}, "vmlinuz: the received bytes do not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCardState(t, v1, nil).mount(-1)
			_, err := apply(t, c.agent("a", key), tc.edit(v2).payload(t, nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want %q", err, tc.want)
			}
			s := c.state()
			if firmware(s, false) != "a" || firmware(s, true) != "a" {
				t.Error("a failed update switched slots")
			}
			if _, err := bootable(s, "b"); err == nil {
				t.Error("slot b looks complete after a failed update")
			}
			if v, err := bootable(s, "a"); err != nil || v != "v1" {
				t.Errorf("slot a: %q, %v", v, err)
			}
			if _, ok := s.boot.files[StateFile]; ok {
				t.Error("a failed update armed a trial")
			}
		})
	}
	// A stream cut short fails too.
	c := newCardState(t, v1, nil).mount(-1)
	p := v2.payload(t, nil)
	if _, err := apply(t, c.agent("a", key), p[:len(p)-20]); err == nil {
		t.Error("a truncated payload was applied")
	}
	if firmware(c.state(), false) != "a" {
		t.Error("a truncated update switched slots")
	}
}

func TestTrialCommitAndRollback(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k1", key, nil)
	v2 := makeRelease(t, "v2", "k2", key, nil)
	v3 := makeRelease(t, "v3", "k3", key, nil)
	c := newCardState(t, v1, nil).mount(-1)
	res, err := apply(t, c.agent("a", key), v2.payload(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The reboot: the firmware boots b.
	b := c.agent("b", key)
	d, tr, _, err := b.OnBoot()
	if d != InTrial || err != nil || tr.Boots != 1 {
		t.Fatalf("Boot = %v %+v %v", d, tr, err)
	}
	if err := b.Commit(*tr); err != nil {
		t.Fatal(err)
	}
	s := c.state()
	st, _ := ParseState(s.boot.files[StateFile])
	if firmware(s, false) != "b" || st.Trial != nil || st.Last == nil || st.Last.Result != ResultCommitted || st.Last.ID != res.ID {
		t.Fatalf("after commit: firmware %s, state %+v %+v", firmware(s, false), st.Trial, st.Last)
	}
	if d, _, _, _ := b.OnBoot(); d != Normal {
		t.Errorf("next boot after commit: %v", d)
	}
	// v3 goes to a, fails its health checks and is rolled back.
	res, err = apply(t, b, v3.payload(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	a := c.agent("a", key)
	d, tr, _, _ = a.OnBoot()
	if d != InTrial {
		t.Fatalf("Boot = %v", d)
	}
	if err := a.Rollback(*tr, "web: not healthy"); err != nil {
		t.Fatal(err)
	}
	s = c.state()
	st, _ = ParseState(s.boot.files[StateFile])
	if firmware(s, false) != "b" || st.Last.Result != ResultRolledBack || st.Last.Reason != "web: not healthy" || st.Last.Version != "v3" {
		t.Fatalf("after rollback: firmware %s, last %+v", firmware(s, false), st.Last)
	}
	if st := b.Status(); st.Booted != "b" || !st.Slots[0].Complete || st.Slots[0].Version != "v3" || !st.Slots[1].Config || st.Last.ID != res.ID {
		t.Errorf("status = %+v", st)
	}
}

func TestTrialCrashLoop(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k1", key, nil)
	v2 := makeRelease(t, "v2", "k2", key, nil)
	c := newCardState(t, v1, nil).mount(-1)
	if _, err := apply(t, c.agent("a", key), v2.payload(t, nil)); err != nil {
		t.Fatal(err)
	}
	b := c.agent("b", key)
	for i := 1; i <= DefaultMaxBoots; i++ {
		if d, tr, _, err := b.OnBoot(); d != InTrial || tr.Boots != i || err != nil {
			t.Fatalf("boot %d: %v %+v %v", i, d, tr, err)
		}
		// ... and the trial crashes before committing.
	}
	d, _, reason, err := b.OnBoot()
	if d != RollBack || err != nil || !strings.Contains(reason, "crash loop") {
		t.Fatalf("boot %d: %v %q %v", DefaultMaxBoots+1, d, reason, err)
	}
	s := c.state()
	if firmware(s, false) != "a" {
		t.Errorf("after the crash loop config.txt boots %s", firmware(s, false))
	}
	if d, _, _, _ := c.agent("a", key).OnBoot(); d != Normal {
		t.Errorf("boot after the rollback: %v", d)
	}
}

func TestTrialLost(t *testing.T) {
	key := testKey(1)
	v1 := makeRelease(t, "v1", "k1", key, nil)
	v2 := makeRelease(t, "v2", "k2", key, func(m *imgota.Manifest) { m.TryBoot = true })
	c := newCardState(t, v1, nil).mount(-1)
	if _, err := apply(t, c.agent("a", key), v2.payload(t, nil)); err != nil {
		t.Fatal(err)
	}
	// The tryboot of b crashed; the firmware boots config.txt's a.
	d, _, reason, err := c.agent("a", key).OnBoot()
	if d != TrialLost || err != nil || !strings.Contains(reason, "not the trial slot b") {
		t.Fatalf("Boot = %v %q %v", d, reason, err)
	}
	s := c.state()
	st, _ := ParseState(s.boot.files[StateFile])
	if st.Trial != nil || st.Last.Result != ResultRolledBack || firmware(s, true) != "a" {
		t.Errorf("state %+v, tryboot boots %s", st, firmware(s, true))
	}
}

func TestDecide(t *testing.T) {
	tr := &Trial{ID: "u", Slot: "b", Previous: "a", Version: "v2", Boots: 0, MaxBoots: 2}
	last := &Outcome{ID: "old", Result: ResultCommitted}
	for _, tc := range []struct {
		name   string
		st     State
		booted string
		want   Decision
		boots  int
	}{
		{"no trial", State{Last: last}, "a", Normal, 0},
		{"first trial boot", State{Trial: tr, Last: last}, "b", InTrial, 1},
		{"second", State{Trial: &Trial{Slot: "b", Previous: "a", Boots: 1, MaxBoots: 2}}, "b", InTrial, 2},
		{"third is a crash loop", State{Trial: &Trial{Slot: "b", Previous: "a", Boots: 2, MaxBoots: 2}}, "b", RollBack, 3},
		{"booted the old slot", State{Trial: tr}, "a", TrialLost, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, d, reason := Decide(tc.st, tc.booted)
			if d != tc.want {
				t.Fatalf("decision %v, want %v", d, tc.want)
			}
			switch d {
			case InTrial, RollBack:
				if next.Trial.Boots != tc.boots || next.Last != tc.st.Last {
					t.Errorf("next = %+v", next)
				}
			case TrialLost:
				if next.Trial != nil || next.Last.Result != ResultRolledBack || next.Last.ID != "u" || reason == "" {
					t.Errorf("next = %+v %+v", next, next.Last)
				}
			}
			if tc.st.Trial != nil && tc.st.Trial.Boots != 0 && tc.st.Trial == tr {
				t.Error("Decide changed its input")
			}
		})
	}
}

func TestParseState(t *testing.T) {
	st := State{Trial: &Trial{ID: "u", Slot: "b", Previous: "a", Version: "v2", Boots: 1, MaxBoots: 3, TryBoot: true},
		Last: &Outcome{ID: "p", Slot: "a", Version: "v1", Result: ResultCommitted}}
	got, err := ParseState(st.Marshal())
	if err != nil || *got.Trial != *st.Trial || *got.Last != *st.Last {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{
		`{"trial":{"slot":"c","previous":"a","max_boots":3}}`,
		`{"trial":{"slot":"b","previous":"b","max_boots":3}}`,
		`{"trial":{"slot":"b","previous":"a","max_boots":0}}`,
		`{"last":{"result":"maybe"}}`,
		`{"extra":1}`,
		`{} {}`,
		`nonsense`,
	} {
		if _, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("ParseState(%s) accepted", bad)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add(State{Trial: &Trial{ID: "u", Slot: "b", Previous: "a", MaxBoots: 3}}.Marshal())
	f.Add([]byte(`{"last":{"result":"committed"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err != nil {
			return
		}
		if _, err := ParseState(st.Marshal()); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		for _, booted := range []string{"a", "b"} {
			Decide(st, booted)
		}
	})
}

// header returns only the header of r's payload.
func header(t *testing.T, r release) []byte {
	var buf bytes.Buffer
	if _, err := imgota.NewWriter(&buf, r.mb, r.sig); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

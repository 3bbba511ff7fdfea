package mirror

import (
	"reflect"
	"testing"
	"time"
)

func TestBatcher(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at      int // ms
		add     []change
		want    []string
		nextAt  int // ms; -1 for none
		comment string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"settles", []step{
			{at: 0, add: []change{{path: "a"}}, nextAt: 20},
			{at: 10, add: []change{{path: "b"}}, nextAt: 30},
			{at: 30, want: []string{"a", "b"}, nextAt: -1},
		}},
		{"a stream is cut at maxDelay", []step{
			{at: 0, add: []change{{path: "a"}}, nextAt: 20},
			{at: 15, add: []change{{path: "b"}}, nextAt: 35},
			{at: 30, add: []change{{path: "c"}}, nextAt: 50},
			{at: 45, add: []change{{path: "d"}}, nextAt: 50},
			{at: 50, want: []string{"a", "b", "c", "d"}, nextAt: -1},
		}},
		{"a file being written waits for its close", []step{
			{at: 0, add: []change{{path: "up.bin", writing: true}, {path: "x"}}, nextAt: 20},
			{at: 20, want: []string{"x"}, nextAt: 2000},
			{at: 500, add: []change{{path: "up.bin", writing: true}}, nextAt: 520},
			{at: 520, nextAt: 2000, comment: "still open"},
			{at: 700, add: []change{{path: "up.bin"}}, nextAt: 720, comment: "closed"},
			{at: 720, want: []string{"up.bin"}, nextAt: -1},
		}},
		{"a file never closed goes out every holdOpen", []step{
			{at: 0, add: []change{{path: "log", writing: true}}, nextAt: 20},
			{at: 20, nextAt: 2000},
			{at: 2000, want: []string{"log"}, nextAt: -1},
			{at: 2100, add: []change{{path: "log", writing: true}}, nextAt: 2120},
			{at: 2120, nextAt: 4000},
			{at: 4000, want: []string{"log"}, nextAt: -1},
		}},
		{"nothing", []step{{at: 0, nextAt: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBatcher(20*time.Millisecond, 50*time.Millisecond, 2*time.Second)
			for i, s := range tc.steps {
				b.add(ms(s.at), s.add)
				got, next := b.due(ms(s.at))
				if !reflect.DeepEqual(got, s.want) {
					t.Errorf("step %d (%s): due %v, want %v", i, s.comment, got, s.want)
				}
				wantNext := time.Time{}
				if s.nextAt >= 0 {
					wantNext = ms(s.nextAt)
				}
				if !next.Equal(wantNext) {
					t.Errorf("step %d (%s): next %v, want %v", i, s.comment, next.Sub(t0), wantNext.Sub(t0))
				}
			}
		})
	}
}

package flash

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressPrinter drives both renderings with made-up progress.
func TestProgressPrinter(t *testing.T) {
	steps := []Progress{
		{PhaseWrite, 0, 100 << 20, 0},
		{PhaseWrite, 10 << 20, 100 << 20, 50 * time.Millisecond},
		{PhaseWrite, 20 << 20, 100 << 20, time.Second},
		{PhaseWrite, 60 << 20, 100 << 20, 6 * time.Second},
		{PhaseWrite, 100 << 20, 100 << 20, 10 * time.Second},
		{PhaseVerify, 50 << 20, 100 << 20, 2 * time.Second},
		{PhaseVerify, 100 << 20, 100 << 20, 4 * time.Second},
	}
	var plain bytes.Buffer
	pp := &ProgressPrinter{W: &plain}
	for _, s := range steps {
		pp.Update(s)
	}
	pp.Finish()
	want := `write    0%  0/100 MiB  0.0 MB/s
write   60%  60/100 MiB  10.5 MB/s  ETA 0:04
write  100%  100/100 MiB  10.5 MB/s  in 0:10
verify  50%  50/100 MiB  26.2 MB/s  ETA 0:02
verify 100%  100/100 MiB  26.2 MB/s  in 0:04
`
	if plain.String() != want {
		t.Errorf("plain:\n%s\nwant:\n%s", plain.String(), want)
	}
	var tty bytes.Buffer
	pp = &ProgressPrinter{W: &tty, Terminal: true}
	for _, s := range steps {
		pp.Update(s)
	}
	out := tty.String()
	if strings.Count(out, "\r") != 6 || strings.Count(out, "\n") != 2 {
		t.Errorf("terminal output has %d redraws and %d lines:\n%q", strings.Count(out, "\r"), strings.Count(out, "\n"), out)
	}
	if !strings.Contains(out, "\rwrite  [==================>           ]  60%  60/100 MiB  10.5 MB/s  ETA 0:04") {
		t.Errorf("no 60%% bar in %q", out)
	}
}

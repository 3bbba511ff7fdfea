package flash

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ProgressPrinter shows Write's progress on W: a bar redrawn in place when
// W is a terminal, otherwise a plain line every Every. It throttles by the
// Progress's own elapsed time, so it needs no clock.
type ProgressPrinter struct {
	W        io.Writer
	Terminal bool
	// Every is the interval between plain lines; 0 means 5 s.
	Every time.Duration

	phase string
	last  time.Duration
	open  bool // a bar is drawn and its line not ended
}

// Update shows p.
func (pp *ProgressPrinter) Update(p Progress) {
	every := pp.Every
	if every == 0 {
		every = 5 * time.Second
	}
	if pp.Terminal {
		every = 100 * time.Millisecond
	}
	newPhase := p.Phase != pp.phase
	if newPhase {
		pp.end()
		pp.phase, pp.last = p.Phase, 0
	}
	final := p.Done >= p.Total
	if !newPhase && !final && p.Elapsed-pp.last < every {
		return
	}
	pp.last = p.Elapsed
	if pp.Terminal {
		fmt.Fprintf(pp.W, "\r%s", bar(p))
		pp.open = true
		if final {
			pp.end()
		}
		return
	}
	fmt.Fprintln(pp.W, status(p))
}

// Finish ends a bar left open (after an error).
func (pp *ProgressPrinter) Finish() { pp.end() }

func (pp *ProgressPrinter) end() {
	if pp.open {
		fmt.Fprintln(pp.W)
		pp.open = false
	}
}

// bar renders "write  [=====>    ]  45%  812/1800 MiB  38.2 MB/s  ETA 0:26".
func bar(p Progress) string {
	const width = 30
	frac := 1.0
	if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	n := int(frac * width)
	b := strings.Repeat("=", n)
	if n < width {
		b += ">" + strings.Repeat(" ", width-n-1)
	}
	return fmt.Sprintf("%-6s [%s] %s", p.Phase, b, figures(p))
}

// status renders "write   45%  812/1800 MiB  38.2 MB/s  ETA 0:26".
func status(p Progress) string {
	return fmt.Sprintf("%-6s %s", p.Phase, figures(p))
}

// figures renders " 45%  812/1800 MiB  38.2 MB/s  ETA 0:26".
func figures(p Progress) string {
	pct := 100
	if p.Total > 0 {
		pct = int(p.Done * 100 / p.Total)
	}
	s := fmt.Sprintf("%3d%%  %d/%d MiB  %.1f MB/s", pct, p.Done>>20, p.Total>>20, p.Rate()/1e6)
	if eta := p.ETA(); eta > 0 {
		s += "  ETA " + clock(eta)
	} else if p.Done >= p.Total {
		s += "  in " + clock(p.Elapsed)
	}
	return s
}

// clock writes d as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

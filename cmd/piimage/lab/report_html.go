package lab

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// Plot geometry, in SVG user units.
const (
	plotW, plotH       = 900, 260
	plotLeft, plotTop  = 60, 16
	plotRight, plotBot = 16, 34
)

// WriteHTML writes the report as one self-contained page: the table, and
// per scenario a latency-over-time plot (inline SVG) marking the fault and
// what followed. It loads nothing from elsewhere.
func (rep *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font-family:system-ui,sans-serif;font-size:14px;margin:1.2em;color:#222;max-width:1100px}
table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee}td.l{text-align:left}.met{background:#cfc}.missed{background:#fbb}
svg{background:#fff;border:1px solid #ccc;margin:.3em 0 1.2em}
.small{font-size:.9em;color:#555}
</style></head><body>
<h1>%s</h1>
`, esc(rep.Title), esc(rep.Title))
	b.WriteString("<ul class=\"small\">\n")
	for _, l := range rep.Setup {
		fmt.Fprintf(&b, "<li>%s</li>\n", esc(l))
	}
	b.WriteString("</ul>\n<table>\n<tr><th>scenario</th><th>sent</th><th>failed</th><th>in flight at fault</th><th>longest gap</th>" +
		"<th>p50/p99 before</th><th>during</th><th>after</th><th>VIP moved</th><th>backend out</th><th>target</th><th></th></tr>\n")
	for i, s := range rep.Scenarios {
		if s.Skipped != "" {
			fmt.Fprintf(&b, "<tr><td class=\"l\">%s</td><td class=\"l\" colspan=\"9\">%s</td><td class=\"l\">%s</td><td></td></tr>\n",
				esc(s.Name), esc(s.Skipped), esc(s.Target))
			continue
		}
		r := Analyze(s.Run, s.Fault)
		v := s.verdict(r)
		cls := ""
		if v == "met" {
			cls = "met"
		} else if v == "MISSED" {
			cls = "missed"
		}
		fmt.Fprintf(&b, "<tr><td class=\"l\"><a href=\"#s%d\">%s</a></td><td>%d</td><td>%d (%.2f%%)</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class=\"l\">%s</td><td class=\"%s\">%s</td></tr>\n",
			i, esc(s.Name), r.Sent, r.Failed, r.FailedPct(), r.InFlight, fmtDur(r.LongestGap),
			fmtPhase(r.Before), fmtPhase(r.During), fmtPhase(r.After), fmtDur(s.VIPMoved), fmtDur(s.BackendOut),
			esc(s.Target), cls, v)
	}
	b.WriteString("</table>\n")
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "<p class=\"small\">%s</p>\n", esc(n))
	}
	for i, s := range rep.Scenarios {
		if s.Skipped != "" {
			continue
		}
		fmt.Fprintf(&b, "<h2 id=\"s%d\">%s</h2>\n<p>%s</p>\n", i, esc(s.Name), esc(s.Op))
		if f := failureSummary(Analyze(s.Run, s.Fault)); f != "" {
			fmt.Fprintf(&b, "<p class=\"small\">%s.</p>\n", esc(strings.ToUpper(f[:1])+f[1:]))
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "<p class=\"small\">%s</p>\n", esc(n))
		}
		writePlot(&b, s)
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writePlot draws each request as a dot at (start, latency), log-scaled
// latency, failed requests in red at the top; vertical lines mark the
// fault and the scenario's events.
func writePlot(b *strings.Builder, s *Scenario) {
	run := s.Run
	if run == nil || len(run.Records) == 0 {
		return
	}
	span := run.Config.Duration + run.Config.Timeout
	for _, r := range run.Records {
		span = max(span, r.End())
	}
	const lo, hi = 0.1, 10000.0 // ms, the y axis
	iw, ih := float64(plotW-plotLeft-plotRight), float64(plotH-plotTop-plotBot)
	x := func(d time.Duration) float64 { return plotLeft + iw*d.Seconds()/span.Seconds() }
	y := func(msv float64) float64 {
		msv = math.Min(math.Max(msv, lo), hi)
		return plotTop + ih*(1-(math.Log10(msv)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo)))
	}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="latency over time">`+"\n", plotW, plotH, plotW, plotH)
	// Axes and grid.
	for _, v := range []float64{0.1, 1, 10, 100, 1000, 10000} {
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="10" text-anchor="end">%s</text>`+"\n",
			plotLeft, plotW-plotRight, y(v), y(v), plotLeft-4, y(v)+3, axisMS(v))
	}
	step := tickStep(span)
	for t := time.Duration(0); t <= span; t += step {
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eee"/><text x="%.1f" y="%d" font-size="10" text-anchor="middle">%gs</text>`+"\n",
			x(t), x(t), plotTop, plotH-plotBot, x(t), plotH-plotBot+12, t.Seconds())
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10">latency (ms, log) of each request by when it was sent; red: failed</text>`+"\n", plotLeft, plotH-6)
	// Dots as zero-length round-capped strokes: one path per colour.
	var ok, bad strings.Builder
	for _, r := range run.Records {
		if r.OK() {
			fmt.Fprintf(&ok, "M%.1f %.1fh0", x(r.Start), y(ms(r.Latency)))
		} else {
			fmt.Fprintf(&bad, "M%.1f %.1fh0", x(r.Start), y(math.Max(ms(r.Latency), hi)))
		}
	}
	if ok.Len() > 0 {
		fmt.Fprintf(b, `<path d="%s" stroke="#2a6fdb" stroke-width="3" stroke-linecap="round" stroke-opacity="0.6"/>`+"\n", ok.String())
	}
	if bad.Len() > 0 {
		fmt.Fprintf(b, `<path d="%s" stroke="#d22" stroke-width="4" stroke-linecap="round"/>`+"\n", bad.String())
	}
	marks := append([]Event{{At: s.Fault, Label: "fault"}}, s.Events...)
	for i, e := range marks {
		colour := "#d22"
		if i > 0 {
			colour = "#080"
		}
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-dasharray="4 3"/><text x="%.1f" y="%d" font-size="10" fill="%s">%s</text>`+"\n",
			x(e.At), x(e.At), plotTop, plotH-plotBot, colour, x(e.At)+3, plotTop+10+12*i, colour, html.EscapeString(e.Label))
	}
	b.WriteString("</svg>\n")
}

func axisMS(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%gms", v)
	}
	if v >= 1000 {
		return fmt.Sprintf("%gs", v/1000)
	}
	return fmt.Sprintf("%gms", v)
}

// tickStep picks a time axis step giving 5 to 15 ticks.
func tickStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute} {
		if span/s <= 15 {
			return s
		}
	}
	return 5 * time.Minute
}

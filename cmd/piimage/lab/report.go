package lab

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// DuringWindow is how long after a fault requests count as "during" it;
// later ones count as "after".
const DuringWindow = 2 * time.Second

// Event is a moment marked on a scenario's plot, from the run's start.
type Event struct {
	At    time.Duration `json:"at"`
	Label string        `json:"label"`
}

// Scenario is one measured operation of the report.
type Scenario struct {
	// Name is the table's row name, e.g. "master LB link down".
	Name string
	// Op says what the lab did.
	Op string
	// Skipped, when set, says why the row has no numbers.
	Skipped string
	// Target is the operation's goal in words; Check tells whether a
	// result meets it (nil: no target).
	Target string
	Check  func(Result) bool
	// Run is the load during the operation, Fault when the fault (or the
	// operation) started, from the run's start.
	Run   *LoadRun
	Fault time.Duration
	// Events are further moments to mark (VIP moved, backend out, ...).
	Events []Event
	// VIPMoved is how long after the fault the VIP was on another node,
	// BackendOut until the balancer stopped sending to the node; -1 when
	// not measured or not applicable.
	VIPMoved   time.Duration
	BackendOut time.Duration
	// Notes are remarks printed under the table.
	Notes []string
}

// Phase is the requests sent in one phase of a scenario.
type Phase struct {
	Sent, Failed int
	// P50 and P99 are latencies of the answered requests; 0 when none.
	P50, P99 time.Duration
}

// Result is what a scenario's load saw.
type Result struct {
	Sent, Failed int
	// InFlight counts the requests sent before the fault that ended after
	// it.
	InFlight int
	// LongestGap is the longest time in which no request got an answer,
	// and GapAt when it began, from the run's start.
	LongestGap time.Duration
	GapAt      time.Duration
	// Before, During and After split the requests by when they were sent:
	// before the fault, in the DuringWindow after it, and later.
	Before, During, After Phase
	// Errors counts failures by kind; FirstFail and LastFail are when
	// the first and last failed requests were sent (relative to the
	// fault), when any failed.
	Errors              map[string]int
	FirstFail, LastFail time.Duration
}

// FailedPct is the share of failed requests in percent.
func (r Result) FailedPct() float64 {
	if r.Sent == 0 {
		return 0
	}
	return 100 * float64(r.Failed) / float64(r.Sent)
}

// Analyze computes what run saw around a fault at fault.
func Analyze(run *LoadRun, fault time.Duration) Result {
	res := Result{Errors: map[string]int{}}
	if run == nil {
		return res
	}
	var before, during, after []Record
	var ends []time.Duration
	for _, r := range run.Records {
		res.Sent++
		if !r.OK() {
			at := r.Start - fault
			if res.Failed == 0 || at < res.FirstFail {
				res.FirstFail = at
			}
			if res.Failed == 0 || at > res.LastFail {
				res.LastFail = at
			}
			res.Failed++
			res.Errors[errorKind(r)]++
		} else {
			ends = append(ends, r.End())
		}
		if r.Start < fault && r.End() > fault {
			res.InFlight++
		}
		switch {
		case r.Start < fault:
			before = append(before, r)
		case r.Start < fault+DuringWindow:
			during = append(during, r)
		default:
			after = append(after, r)
		}
	}
	res.Before, res.During, res.After = phase(before), phase(during), phase(after)
	sort.Slice(ends, func(i, j int) bool { return ends[i] < ends[j] })
	for i := 1; i < len(ends); i++ {
		if g := ends[i] - ends[i-1]; g > res.LongestGap {
			res.LongestGap, res.GapAt = g, ends[i-1]
		}
	}
	return res
}

func phase(rs []Record) Phase {
	p := Phase{Sent: len(rs)}
	var lat []time.Duration
	for _, r := range rs {
		if r.OK() {
			lat = append(lat, r.Latency)
		} else {
			p.Failed++
		}
	}
	p.P50, p.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return p
}

// quantile returns the q-quantile of ds (nearest rank); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// errorKind sorts a failure for the error summary.
func errorKind(r Record) string {
	switch {
	case r.Err == "":
		return fmt.Sprintf("HTTP %d", r.Status)
	case strings.Contains(r.Err, "Client.Timeout") || strings.Contains(r.Err, "deadline exceeded") || strings.Contains(r.Err, "timeout"):
		return "timeout"
	case strings.Contains(r.Err, "connection refused"):
		return "connection refused"
	case strings.Contains(r.Err, "connection reset"):
		return "connection reset"
	case strings.Contains(r.Err, "EOF"):
		return "connection closed"
	case strings.Contains(r.Err, "no route") || strings.Contains(r.Err, "unreachable"):
		return "unreachable"
	case strings.Contains(r.Err, "too many requests in flight"):
		return "client overloaded"
	}
	return "other"
}

// Report is the failover report: the scenarios and how they were run.
type Report struct {
	Title string
	// Setup describes the lab and the load, one line each.
	Setup []string
	// Started is when the report's first scenario began.
	Started   time.Time
	Scenarios []*Scenario
	// Notes are remarks for the whole report.
	Notes []string
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d == 0:
		return "0"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", ms(d))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", ms(d))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func fmtPhase(p Phase) string {
	if p.Sent == 0 {
		return "-"
	}
	return fmtDur(p.P50) + "/" + fmtDur(p.P99)
}

// verdict says whether a scenario met its target.
func (s *Scenario) verdict(r Result) string {
	switch {
	case s.Skipped != "":
		return "-"
	case s.Check == nil:
		return "(no target)"
	case s.Check(r):
		return "met"
	}
	return "MISSED"
}

// WriteText prints the report as a table.
func (rep *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s\n", rep.Title)
	for _, l := range rep.Setup {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tsent\tfailed\tin flight\tlongest gap\tp50/p99 before\tduring\tafter\tVIP moved\tbackend out\ttarget\t")
	for _, s := range rep.Scenarios {
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%s: not measured\t\n", s.Name, s.Target)
			continue
		}
		r := Analyze(s.Run, s.Fault)
		target := s.Target
		if s.Check != nil {
			target += ": " + s.verdict(r)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d (%.2f%%)\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Name, r.Sent, r.Failed, r.FailedPct(), r.InFlight, fmtDur(r.LongestGap),
			fmtPhase(r.Before), fmtPhase(r.During), fmtPhase(r.After),
			fmtDur(s.VIPMoved), fmtDur(s.BackendOut), target)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range rep.Scenarios {
		if s.Skipped != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, s.Skipped)
			continue
		}
		fmt.Fprintf(w, "  %s: %s\n", s.Name, strings.TrimSuffix(s.Op, "."))
		if f := failureSummary(Analyze(s.Run, s.Fault)); f != "" {
			fmt.Fprintf(w, "    %s\n", f)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "    %s\n", n)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "%s\n", n)
	}
	return nil
}

// failureSummary says how many requests failed, how, and when they were
// sent relative to the fault; "" when none failed.
func failureSummary(r Result) string {
	if r.Failed == 0 {
		return ""
	}
	var parts []string
	for k, v := range r.Errors {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return fmt.Sprintf("failures: %s; sent from %s to %s after the fault", strings.Join(parts, ", "), signedDur(r.FirstFail), signedDur(r.LastFail))
}

func signedDur(d time.Duration) string {
	if d < 0 {
		return "-" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

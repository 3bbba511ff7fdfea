package lab

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of one load run, whatever the caller asks.
const (
	MaxLoadRate     = 5000
	MaxLoadDuration = 10 * time.Minute
	MaxLoadRequests = 1_000_000
)

// LoadConfig is one run of the load generator: open loop, one request
// every 1/Rate seconds whether or not earlier ones have answered (as many
// independent clients do), each on a new connection.
type LoadConfig struct {
	// URL is what every request GETs.
	URL string
	// Rate is requests per second, 1..MaxLoadRate.
	Rate float64
	// Duration is how long requests are started, up to MaxLoadDuration;
	// the run ends at most Timeout later.
	Duration time.Duration
	// Timeout bounds each request; 0 means 2s.
	Timeout time.Duration
	// MaxInFlight bounds the requests waiting at once; a request that
	// would exceed it is recorded as failed without being sent. 0 means
	// 2000.
	MaxInFlight int
	// Transport sends the requests; nil means http.DefaultTransport's
	// settings without keep-alives.
	Transport http.RoundTripper
	// Start is when the first request is sent and the records' zero;
	// the zero Time means now. Scenarios set it to time their faults.
	Start time.Time
	// Stop, when closed, ends the run early: no request is started after
	// it, those in flight finish (cancelling the context fails them).
	Stop <-chan struct{}
}

// Record is one request of a load run.
type Record struct {
	// Start is when it was sent, from the run's start.
	Start time.Duration
	// Latency is until its body was read, or until it failed.
	Latency time.Duration
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	// Err says why it failed; "" for an answer.
	Err string
	// Backend is the first line of the answer (GET /whoami answers the
	// web node's hostname).
	Backend string
}

// End is when the request ended, from the run's start.
func (r Record) End() time.Duration { return r.Start + r.Latency }

// OK reports whether the request got a 2xx or 3xx answer.
func (r Record) OK() bool { return r.Err == "" && r.Status >= 200 && r.Status < 400 }

// LoadRun is the result of RunLoad.
type LoadRun struct {
	Config  LoadConfig
	Started time.Time
	Records []Record
}

func (c *LoadConfig) check() error {
	if c.URL == "" {
		return errors.New("load: no URL")
	}
	if c.Rate < 1 || c.Rate > MaxLoadRate || math.IsNaN(c.Rate) {
		return fmt.Errorf("load: rate %v is not within 1..%d requests per second", c.Rate, MaxLoadRate)
	}
	if c.Duration <= 0 || c.Duration > MaxLoadDuration {
		return fmt.Errorf("load: duration %v is not within 0..%v", c.Duration, MaxLoadDuration)
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		return fmt.Errorf("load: timeout %v is not within 0..1m", c.Timeout)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 2000
	}
	return nil
}

// count is how many requests the run sends.
func (c LoadConfig) count() int {
	n := int(c.Rate * c.Duration.Seconds())
	return max(1, min(n, MaxLoadRequests))
}

// RunLoad sends c.Rate requests a second for c.Duration (at most
// MaxLoadRequests) and records every one. It returns when every request
// has ended, or early (with what was recorded) when ctx is done.
func RunLoad(ctx context.Context, c LoadConfig) (*LoadRun, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	tr := c.Transport
	if tr == nil {
		tr = &http.Transport{DisableKeepAlives: true}
	}
	client := &http.Client{Transport: tr, Timeout: c.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	n := c.count()
	t0 := c.Start
	if t0.IsZero() {
		t0 = time.Now()
	}
	run := &LoadRun{Config: c, Started: t0, Records: make([]Record, n)}
	interval := time.Duration(float64(time.Second) / c.Rate)
	sem := make(chan struct{}, c.MaxInFlight)
	var wg sync.WaitGroup
	sent := 0
	for i := 0; i < n; i++ {
		at := time.Duration(i) * interval
		if d := time.Until(run.Started.Add(at)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-c.Stop:
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil || stopped(c.Stop) {
			break
		}
		sent++
		start := max(0, time.Since(run.Started))
		select {
		case sem <- struct{}{}:
		default:
			run.Records[i] = Record{Start: start, Err: "client: too many requests in flight"}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			run.Records[i] = doRequest(ctx, client, c.URL, run.Started, start)
		})
	}
	wg.Wait()
	run.Records = run.Records[:sent]
	return run, nil
}

// stopped reports whether stop is closed (never for nil).
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// doRequest sends one GET and reads the answer.
func doRequest(ctx context.Context, client *http.Client, url string, t0 time.Time, start time.Duration) Record {
	r := Record{Start: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	resp, err := client.Do(req)
	if err != nil {
		r.Latency = time.Since(t0) - start
		r.Err = shortErr(err)
		return r
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	r.Latency = time.Since(t0) - start
	r.Status = resp.StatusCode
	if err != nil {
		r.Err = "reading the answer: " + shortErr(err)
		return r
	}
	line, _, _ := strings.Cut(string(body), "\n")
	if len(line) > 64 {
		line = line[:64]
	}
	r.Backend = strings.TrimSpace(line)
	return r
}

// shortErr drops the method and URL that net/http puts in front.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "\": "); i >= 0 {
		s = s[i+3:]
	}
	return s
}

// WriteCSV writes one line per request: start and latency in
// milliseconds, status, error, backend.
func (r *LoadRun) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"start_ms", "latency_ms", "status", "error", "backend"})
	for _, x := range r.Records {
		cw.Write([]string{
			strconv.FormatFloat(ms(x.Start), 'f', 3, 64), strconv.FormatFloat(ms(x.Latency), 'f', 3, 64),
			strconv.Itoa(x.Status), x.Err, x.Backend,
		})
	}
	cw.Flush()
	return cw.Error()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

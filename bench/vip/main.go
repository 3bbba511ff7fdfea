// Command vip measures what a VIP failover costs a client, for our VRRP
// service and for keepalived side by side.
//
// It builds a lab of network namespaces joined by a bridge (test-only
// 10.99.0.0/24 addresses that exist only inside them): two load balancer
// nodes, each with a tiny HTTP server on port 80 and a VRRP daemon sharing
// the VIP 10.99.0.100, and a client node that requests http://VIP/ every
// 10ms. For each scenario (link cut, crash, graceful stop, planned
// handover of the master) it prints failed requests and the longest time
// without an answer.
//
//	go run ./bench/vip [-runs 3] [-only ours]
//
// It needs root, iproute2 and keepalived; it never fails a build.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	lab "github.com/piimage/piimage/services/vip/viplab"
)

const envRole = "PIIMG_VIP_BENCH_ROLE"

var vipAddr = netip.MustParsePrefix("10.99.0.100/24")

func main() {
	lab.NodeMain()
	switch os.Getenv(envRole) {
	case "serve":
		exitOn(serve())
	case "poll":
		exitOn(poll(os.Args[1:]))
	}
	runs := flag.Int("runs", 3, "runs of each scenario")
	only := flag.String("only", "", "run only setups whose name contains this")
	scen := flag.String("scenario", "", "run only scenarios whose name contains this")
	verbose := flag.Bool("v", false, "print daemon logs of failed runs")
	flag.Parse()
	if err := errors.Join(lab.Available(), lab.KeepalivedAvailable()); err != nil {
		fmt.Fprintln(os.Stderr, "bench/vip:", err)
		os.Exit(0) // a benchmark that cannot run here does not fail the build
	}
	exitOn(bench(*runs, *only, *scen, *verbose))
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/vip:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve answers every request on port 80 with the node's name.
func serve() error {
	if err := lab.CheckInLab(); err != nil {
		return err
	}
	name := os.Getenv("PIIMG_VIP_BENCH_NAME")
	return http.ListenAndServe(":80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
}

// result is what the client measured.
type result struct {
	Requests, Failures int
	LongestGap         time.Duration
	Servers            map[string]int
}

// poll requests url every 10ms for the given duration, each request on a
// new connection with a 300ms timeout, and prints a result as JSON.
func poll(args []string) error {
	if err := lab.CheckInLab(); err != nil {
		return err
	}
	if len(args) != 2 {
		return errors.New("poll URL DURATION")
	}
	d, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{
		DisableKeepAlives: true, Proxy: nil,
		DialContext: (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext,
	}}
	var mu sync.Mutex
	var oks []time.Time
	res := result{Servers: map[string]int{}}
	var wg sync.WaitGroup
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for time.Since(start) < d {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(args[0])
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			done := time.Now()
			mu.Lock()
			defer mu.Unlock()
			res.Requests++
			if err != nil || resp.StatusCode != 200 {
				res.Failures++
				return
			}
			oks = append(oks, done)
			res.Servers[string(body)]++
		}()
	}
	wg.Wait()
	sort.Slice(oks, func(i, j int) bool { return oks[i].Before(oks[j]) })
	for i := 1; i < len(oks); i++ {
		res.LongestGap = max(res.LongestGap, oks[i].Sub(oks[i-1]))
	}
	if len(oks) == 0 {
		res.LongestGap = d
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// setup is one VRRP implementation at one advertisement interval.
type setup struct {
	name     string
	impl     string // "ours" or "keepalived"
	version  int
	interval time.Duration
}

type scenario struct {
	name string
	// fault hits the master m, whose VRRP daemon is p; killServer ends its
	// HTTP server.
	fault func(m *lab.Node, p lab.Proc, killServer func()) error
}

var scenarios = []scenario{
	{"link cut", func(m *lab.Node, p lab.Proc, _ func()) error { return m.CutLink() }},
	// The balancer and the VRRP daemon die together (SIGKILL); the node's
	// kernel stays up, keeps the stale VIP and refuses connections.
	{"crash (SIGKILL)", func(m *lab.Node, p lab.Proc, killServer func()) error {
		killServer()
		return p.Kill()
	}},
	{"graceful stop", func(m *lab.Node, p lab.Proc, _ func()) error { return p.Stop() }},
	{"planned handover", func(m *lab.Node, p lab.Proc, _ func()) error {
		h, ok := p.(lab.Handoverer)
		if !ok {
			return errSkip
		}
		return h.Handover()
	}},
}

var errSkip = errors.New("not supported")

func bench(runs int, only, scen string, verbose bool) error {
	setups := []setup{
		{"keepalived, advert_int 1s (its default)", "keepalived", 3, time.Second},
		{"ours, advert 1s (equal interval)", "ours", 3, time.Second},
		{"keepalived, advert_int 0.1s", "keepalived", 3, 100 * time.Millisecond},
		{"ours, default advert 100ms", "ours", 3, 100 * time.Millisecond},
	}
	type row struct {
		gaps  []time.Duration
		fails []int
		err   string
	}
	table := map[string]map[string]*row{}
	for _, su := range setups {
		if only != "" && !strings.Contains(su.name, only) {
			continue
		}
		table[su.name] = map[string]*row{}
		for _, sc := range scenarios {
			if scen != "" && !strings.Contains(sc.name, scen) {
				continue
			}
			r := &row{}
			table[su.name][sc.name] = r
			for i := range runs {
				res, logs, err := once(su, sc)
				if errors.Is(err, errSkip) {
					r.err = "n/a"
					break
				}
				if err != nil {
					r.err = err.Error()
					if verbose {
						fmt.Fprintf(os.Stderr, "--- %s / %s run %d: %v\n%s\n", su.name, sc.name, i, err, logs)
					}
					continue
				}
				r.gaps = append(r.gaps, res.LongestGap)
				r.fails = append(r.fails, res.Failures)
				fmt.Fprintf(os.Stderr, "%-42s %-18s run %d: gap %-8s failed %d/%d served by %v\n", su.name, sc.name, i+1,
					res.LongestGap.Round(time.Millisecond), res.Failures, res.Requests, res.Servers)
			}
		}
	}
	fmt.Printf("\nFailover as a client polling every 10ms sees it (longest gap between answers, median of runs [min-max]; failed requests)\n\n")
	fmt.Printf("%-18s", "scenario")
	for _, su := range setups {
		if table[su.name] != nil {
			fmt.Printf(" | %-34s", su.name)
		}
	}
	fmt.Println()
	for _, sc := range scenarios {
		fmt.Printf("%-18s", sc.name)
		for _, su := range setups {
			if table[su.name] == nil {
				continue
			}
			r := table[su.name][sc.name]
			if r == nil {
				r = &row{err: "-"}
			}
			cell := r.err
			if len(r.gaps) > 0 {
				g := slices.Clone(r.gaps)
				slices.Sort(g)
				f := slices.Clone(r.fails)
				slices.Sort(f)
				cell = fmt.Sprintf("%s [%s-%s]; %d fail", g[len(g)/2].Round(time.Millisecond), g[0].Round(time.Millisecond),
					g[len(g)-1].Round(time.Millisecond), f[len(f)/2])
			}
			if len(cell) > 34 {
				cell = cell[:34]
			}
			fmt.Printf(" | %-34s", cell)
		}
		fmt.Println()
	}
	return nil
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// once builds a lab, elects node a (priority 150) over b (100), polls the
// VIP from the client while the fault hits a, and tears everything down.
func once(su setup, sc scenario) (res result, logs string, err error) {
	logw := &logBuf{}
	defer func() { logs = logw.b.String() }()
	l, err := lab.New(netip.MustParsePrefix("10.99.0.0/24"))
	if err != nil {
		return res, "", err
	}
	defer l.Close()
	dir, err := os.MkdirTemp("", "bench-vip")
	if err != nil {
		return res, "", err
	}
	defer os.RemoveAll(dir)
	a, err := l.AddNode("a", 2)
	if err != nil {
		return res, "", err
	}
	b, err := l.AddNode("b", 3)
	if err != nil {
		return res, "", err
	}
	client, err := l.AddNode("c", 10)
	if err != nil {
		return res, "", err
	}
	var cmds []*lab.Node
	var procs []lab.Proc
	defer func() {
		for _, p := range procs {
			p.Kill()
		}
	}()
	var servers []*os.Process
	defer func() {
		for _, p := range servers {
			p.Kill()
			p.Wait()
		}
	}()
	for _, n := range []*lab.Node{a, b} {
		cmd, err := n.Reexec([]string{envRole + "=serve", "PIIMG_VIP_BENCH_NAME=" + strings.TrimPrefix(n.NS, l.Prefix+"-")}, logw)
		if err != nil {
			return res, "", err
		}
		if err := cmd.Start(); err != nil {
			return res, "", err
		}
		servers = append(servers, cmd.Process)
		cmds = append(cmds, n)
	}
	spec := func(prio int) lab.Spec {
		return lab.Spec{Version: su.version, VRID: 51, Priority: prio, VIP: vipAddr, Interval: su.interval}
	}
	start := func(n *lab.Node, prio int) (lab.Proc, error) {
		if su.impl == "ours" {
			return n.StartOurs(spec(prio), dir, logw)
		}
		return n.StartKeepalived(spec(prio), dir, logw)
	}
	pb, err := start(b, 100)
	if err != nil {
		return res, "", err
	}
	procs = append(procs, pb)
	pa, err := start(a, 150)
	if err != nil {
		return res, "", err
	}
	procs = append(procs, pa)
	settle := 3*su.interval + su.interval + 3*time.Second
	if !lab.WaitFor(settle+5*time.Second, func() bool { return a.Holds(vipAddr.Addr()) && !b.Holds(vipAddr.Addr()) }) {
		return res, "", errors.New("a never became the only master")
	}
	// Let keepalived's delayed second round of gratuitous ARPs pass.
	time.Sleep(time.Second)

	const lead = time.Second
	total := lead + 4*su.interval + 3*time.Second
	poller, err := client.Reexec([]string{envRole + "=poll"}, logw, fmt.Sprintf("http://%s/", vipAddr.Addr()), total.String())
	if err != nil {
		return res, "", err
	}
	var out strings.Builder
	poller.Stdout = &out
	ctx, cancel := context.WithTimeout(context.Background(), total+30*time.Second)
	defer cancel()
	if err := poller.Start(); err != nil {
		return res, "", err
	}
	waited := make(chan error, 1)
	go func() { waited <- poller.Wait() }()
	time.Sleep(lead)
	if err := sc.fault(a, pa, func() { servers[0].Kill() }); err != nil {
		poller.Process.Kill()
		<-waited
		return res, "", err
	}
	select {
	case err := <-waited:
		if err != nil {
			return res, "", fmt.Errorf("client: %w", err)
		}
	case <-ctx.Done():
		poller.Process.Kill()
		return res, "", errors.New("client did not finish")
	}
	if !b.Holds(vipAddr.Addr()) {
		return res, "", errors.New("b does not hold the VIP after the fault")
	}
	err = json.Unmarshal([]byte(out.String()), &res)
	if os.Getenv("PIIMG_VIP_BENCH_LOGS") != "" {
		fmt.Fprintln(os.Stderr, logw.b.String())
	}
	return res, "", err
}

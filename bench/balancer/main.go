// Command balancer compares the piimage balancer with HAProxy in one run:
// both sit in front of the same two backends on loopback, with seed 001's
// setup (mode http, roundrobin, check inter 500 fall 3 rise 2), and wrk
// measures requests per second and latency with keep-alive and with
// "Connection: close", then the resident memory of each at 1,000 open
// connections. The balancer runs twice: with its Linux event loops (the
// default) and with a goroutine per connection (Config.NoEventLoop).
//
//	go run ./bench/balancer [-d 2s] [-rounds 9] [-c 100] [-t 2] [-goroutines=false]
//
// Other work on the machine comes and goes within seconds, so the runs are
// short and interleaved, and each round's ratio to HAProxy (measured next
// to it) is reported: the median of those ratios and their range.
//
// PIIMAGE_BENCH_CPUPROFILE=file writes a CPU profile of the balancer.
//
// It needs the Debian packages haproxy and wrk, and uses nginx for the
// backends when installed (small Go servers otherwise). Everything listens
// on 127.0.0.1 high ports; config and PID files live in a temp folder; the
// processes it starts are stopped by PID. It never fails a build: it is a
// measurement, not a test.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/piimage/piimage/services/balancer"
)

func main() {
	switch os.Getenv("PIIMAGE_BENCH_ROLE") {
	case "balancer":
		runBalancer()
		return
	case "backend":
		runGoBackend(os.Getenv("PIIMAGE_BENCH_ADDR"))
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	dur      time.Duration
	conns    int
	threads  int
	memConns int
	backend  string
	modes    string
	mem      bool
	rounds   int
	gor      bool
}

func run() error {
	var o options
	flag.DurationVar(&o.dur, "d", 2*time.Second, "duration of each wrk run")
	flag.IntVar(&o.rounds, "rounds", 9, "rounds per mode (medians are compared)")
	flag.BoolVar(&o.gor, "goroutines", true, "also run the balancer with a goroutine per connection (no event loops)")
	flag.IntVar(&o.conns, "c", 100, "wrk connections")
	flag.IntVar(&o.threads, "t", 2, "wrk threads")
	flag.IntVar(&o.memConns, "mem-conns", 1000, "connections held open for the memory measurement")
	flag.StringVar(&o.backend, "backend", "auto", "backends: nginx, go or auto")
	flag.StringVar(&o.modes, "modes", "keep-alive,close", "wrk runs: keep-alive, close or both")
	flag.BoolVar(&o.mem, "mem", true, "measure memory at -mem-conns connections")
	flag.Parse()

	for _, tool := range []string{"haproxy", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install %s)", tool, tool)
		}
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "bench: raising the open-file limit:", err)
	}
	dir, err := os.MkdirTemp("", "piimage-bench-balancer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	be1, be2, haPort, ourPort, gorPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			stop(p)
		}
	}()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	kind := o.backend
	if kind == "auto" {
		kind = "go"
		if _, err := exec.LookPath("nginx"); err == nil {
			kind = "nginx"
		}
	}
	switch kind {
	case "nginx":
		p, err := startNginx(dir, be1, be2)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	case "go":
		for _, port := range []int{be1, be2} {
			p, err := startSelf(dir, "backend", "PIIMAGE_BENCH_ADDR=127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return err
			}
			procs = append(procs, p)
		}
	default:
		return fmt.Errorf("unknown backend kind %q", kind)
	}
	ha, err := startHAProxy(dir, haPort, be1, be2)
	if err != nil {
		return err
	}
	procs = append(procs, ha)
	ours, err := startSelf(dir, "balancer", fmt.Sprintf("PIIMAGE_BENCH_LISTEN=127.0.0.1:%d", ourPort),
		fmt.Sprintf("PIIMAGE_BENCH_BACKENDS=127.0.0.1:%d,127.0.0.1:%d", be1, be2))
	if err != nil {
		return err
	}
	procs = append(procs, ours)
	targets := []target{
		{"haproxy", fmt.Sprintf("http://127.0.0.1:%d/", haPort), ha.Process.Pid},
		{"piimage", fmt.Sprintf("http://127.0.0.1:%d/", ourPort), ours.Process.Pid},
	}
	if o.gor {
		g, err := startSelf(dir, "balancer", fmt.Sprintf("PIIMAGE_BENCH_LISTEN=127.0.0.1:%d", gorPort),
			fmt.Sprintf("PIIMAGE_BENCH_BACKENDS=127.0.0.1:%d,127.0.0.1:%d", be1, be2), "PIIMAGE_BENCH_NOEVENTLOOP=1")
		if err != nil {
			return err
		}
		procs = append(procs, g)
		targets = append(targets, target{"goroutine", fmt.Sprintf("http://127.0.0.1:%d/", gorPort), g.Process.Pid})
	}
	for _, t := range targets {
		if err := waitOK(ctx, t.url); err != nil {
			return fmt.Errorf("%s does not answer: %w", t.name, err)
		}
	}
	fmt.Printf("backends: %s on 127.0.0.1:%d and :%d; wrk -t%d -c%d -d%s, %d rounds; %d CPUs (shared with other work: numbers are noisy)\n",
		kind, be1, be2, o.threads, o.conns, o.dur, o.rounds, numCPU())

	// Each mode runs in short rounds that alternate the order of the
	// proxies; each round's ratio to HAProxy compares runs made seconds
	// apart, under the same other load.
	for _, mode := range strings.Split(o.modes, ",") {
		for _, t := range targets {
			warmUp(ctx, o, mode, t.url)
		}
		runs := map[string][]wrkResult{}
		for round := range o.rounds {
			order := slices.Clone(targets)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, t := range order {
				r, err := runWrk(ctx, o, mode, t.url, t.pid)
				if err != nil {
					return fmt.Errorf("%s %s: %w", t.name, mode, err)
				}
				runs[t.name] = append(runs[t.name], r)
				fmt.Printf("%-10s %-9s round %d %10.0f req/s   p50 %7.2f ms   p99 %7.2f ms   CPU %5.1f µs/req%s\n",
					mode, t.name, round+1, r.rps, r.p50, r.p99, r.cpuPerReq, r.note)
			}
		}
		for _, t := range targets {
			m := median(runs[t.name])
			fmt.Printf("%-10s %-9s median  %10.0f req/s   p50 %7.2f ms   p99 %7.2f ms   CPU %5.1f µs/req\n",
				mode, t.name, m.rps, m.p50, m.p99, m.cpuPerReq)
		}
		for _, t := range targets[1:] {
			rr, pr, cr := ratios(runs[t.name], runs["haproxy"])
			fmt.Printf("%-10s %s/haproxy, median of the rounds' ratios [range]: req/s %s, p99 %s, CPU per request %s\n",
				mode, t.name, rr, pr, cr)
		}
	}

	for _, t := range targets {
		if !o.mem {
			break
		}
		rss, err := rssUnderLoad(ctx, t.pid, t.url, o.memConns, o.threads)
		if err != nil {
			return fmt.Errorf("measuring memory of %s: %w", t.name, err)
		}
		fmt.Printf("memory %-9s peak RSS %.1f MB with %d connections\n", t.name, float64(rss)/(1<<20), o.memConns)
	}
	return nil
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func startNginx(dir string, p1, p2 int) (*exec.Cmd, error) {
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server { listen 127.0.0.1:%[2]d; location / { default_type text/plain; return 200 "hello from web1\n"; } }
  server { listen 127.0.0.1:%[3]d; location / { default_type text/plain; return 200 "hello from web2\n"; } }
}
`, dir, p1, p2)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("nginx", "-c", path, "-p", dir, "-e", filepath.Join(dir, "nginx-error.log"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	return cmd, waitPort(p1)
}

func startHAProxy(dir string, port, p1, p2 int) (*exec.Cmd, error) {
	// Seed 001's configuration on loopback ports.
	conf := fmt.Sprintf(`global
    maxconn 4000
    pidfile %[1]s/haproxy.pid

defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend http-in
    bind 127.0.0.1:%[2]d
    default_backend webservers

backend webservers
    balance roundrobin
    server web1 127.0.0.1:%[3]d check inter 500 fall 3 rise 2
    server web2 127.0.0.1:%[4]d check inter 500 fall 3 rise 2
`, dir, port, p1, p2)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("haproxy", "-f", path, "-db")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting haproxy: %w", err)
	}
	return cmd, waitPort(port)
}

// startSelf re-runs this program in another role, as its own process.
func startSelf(dir, role string, env ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), append(env, "PIIMAGE_BENCH_ROLE="+role)...)
	cmd.Stderr = os.Stderr
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", role, err)
	}
	return cmd, nil
}

// stop ends a process this program started, by its PID.
func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func waitPort(port int) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on port %d", port)
}

func waitOK(ctx context.Context, url string) error {
	deadline := time.Now().Add(5 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

type wrkResult struct {
	rps, p50, p99 float64
	cpuPerReq     float64 // microseconds of the proxy's CPU per request
	note          string
}

type target struct {
	name string
	url  string
	pid  int
}

func wrkArgs(o options, mode, url string, d time.Duration) []string {
	args := []string{"--latency", "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.conns), "-d", d.String(), url}
	if mode == "close" {
		args = append([]string{"-H", "Connection: close"}, args...)
	}
	return args
}

// warmUp runs wrk for a second against url.
func warmUp(ctx context.Context, o options, mode, url string) {
	exec.CommandContext(ctx, "wrk", wrkArgs(o, mode, url, time.Second)...).Run()
}

// runWrk measures one proxy with wrk in one mode.
func runWrk(ctx context.Context, o options, mode, url string, pid int) (wrkResult, error) {
	args := wrkArgs(o, mode, url, o.dur)
	cpu0, _ := cpuTime(pid)
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	cpu1, _ := cpuTime(pid)
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("reading wrk's output: %w\n%s", err, out)
	}
	r.cpuPerReq = (cpu1 - cpu0).Seconds() * 1e6 / (r.rps * o.dur.Seconds())
	if e := wrkErrors(string(out)); e != "" {
		r.note = "  (" + e + ")"
	}
	return r, nil
}

// spread is the median of some ratios and their range.
type spread struct{ med, lo, hi float64 }

func (s spread) String() string { return fmt.Sprintf("%.2fx [%.2f-%.2f]", s.med, s.lo, s.hi) }

// ratios returns, for req/s, p99 and CPU per request, the ratios of each
// round of a to the same round of b.
func ratios(a, b []wrkResult) (rps, p99, cpu spread) {
	of := func(f func(wrkResult) float64) spread {
		var v []float64
		for i := range min(len(a), len(b)) {
			if d := f(b[i]); d > 0 {
				v = append(v, f(a[i])/d)
			}
		}
		if len(v) == 0 {
			return spread{}
		}
		slices.Sort(v)
		m := v[len(v)/2]
		if len(v)%2 == 0 {
			m = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		return spread{m, v[0], v[len(v)-1]}
	}
	return of(func(r wrkResult) float64 { return r.rps }), of(func(r wrkResult) float64 { return r.p99 }),
		of(func(r wrkResult) float64 { return r.cpuPerReq })
}

// median returns the median of each measure separately.
func median(rs []wrkResult) wrkResult {
	pick := func(f func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return wrkResult{
		rps:       pick(func(r wrkResult) float64 { return r.rps }),
		p50:       pick(func(r wrkResult) float64 { return r.p50 }),
		p99:       pick(func(r wrkResult) float64 { return r.p99 }),
		cpuPerReq: pick(func(r wrkResult) float64 { return r.cpuPerReq }),
	}
}

var (
	reRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP   = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\b`)
)

// parseWrk reads requests/s and the 50th and 99th latency percentiles (in
// milliseconds) from wrk --latency output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("no Requests/sec line")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, pm := range reP.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(pm[2], 64)
		switch pm[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if pm[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	return r, nil
}

// wrkErrors returns wrk's error lines (socket errors, non-2xx answers).
func wrkErrors(out string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "Socket errors") || strings.HasPrefix(l, "Non-2xx") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// rssUnderLoad holds conns connections open through url with wrk (slow
// requests) and returns the peak resident memory of process pid.
func rssUnderLoad(ctx context.Context, pid int, url string, conns, threads int) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", "5s", url)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	var peak int64
	for i := 0; i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		if v, err := rss(pid); err == nil && v > peak {
			peak = v
		}
	}
	return peak, nil
}

// cpuTime returns the user plus system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil // USER_HZ is 100
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// runBalancer is the balancer process of the benchmark: seed 001's setup,
// tuned like the init's balancer process.
func runBalancer() {
	balancer.TuneProcess()
	var bcs []balancer.BackendConfig
	for i, a := range strings.Split(os.Getenv("PIIMAGE_BENCH_BACKENDS"), ",") {
		bcs = append(bcs, balancer.BackendConfig{Name: fmt.Sprintf("web%d", i+1), Address: a})
	}
	b, err := balancer.NewFromConfig(balancer.Config{
		Addr:        os.Getenv("PIIMAGE_BENCH_LISTEN"),
		Algorithm:   "roundrobin",
		Backends:    bcs,
		Check:       balancer.CheckConfig{Interval: 500 * time.Millisecond, Fall: 3, Rise: 2},
		MaxConn:     4000,
		NoEventLoop: os.Getenv("PIIMAGE_BENCH_NOEVENTLOOP") != "",
	}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench balancer:", err)
		os.Exit(1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	if path := os.Getenv("PIIMAGE_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if n, err := strconv.Atoi(os.Getenv("PIIMAGE_BENCH_GOMAXPROCS")); err == nil && n > 0 {
		runtime.GOMAXPROCS(n)
	}
	if os.Getenv("PIIMAGE_BENCH_MEMSTATS") != "" {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(time.Second)
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				fmt.Fprintf(os.Stderr, "memstats: heap in use %.1f MB, stacks %.1f MB, sys %.1f MB, goroutines %d\n",
					float64(m.HeapInuse)/(1<<20), float64(m.StackInuse)/(1<<20), float64(m.Sys)/(1<<20), runtime.NumGoroutine())
			}
		}()
	}
	if err := b.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench balancer:", err)
		os.Exit(1)
	}
}

// runGoBackend is a small backend for machines without nginx.
func runGoBackend(addr string) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	msg := []byte("hello from " + addr + "\n")
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(msg)
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bench backend:", err)
		os.Exit(1)
	}
}

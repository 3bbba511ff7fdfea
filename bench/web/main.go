// Command web measures the web server against the incumbents of the seeds,
// nginx and lighttpd (Debian packages), on the same files in the same run:
// requests per second and latency for a 1 KiB file, throughput for a 1 MiB
// file. Each server is pinned to CPU 0 with taskset and wrk to CPU 1, and
// is tuned as its users would tune it (sendfile, keep-alive, one worker
// per core, no access log). Configurations, pid files and the files served
// live in a temporary folder; servers listen on 127.0.0.1 high ports and
// are stopped by PID at the end. It prints the figures and the ratios to
// the fastest incumbent next to the targets, and never fails the build
// (make bench): a missing tool is reported and skipped.
//
//	go run ./bench/web [-d 10s] [-c 50] [-rounds 1]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/piimage/piimage/services/web"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-serve" {
		// The re-executed child: our server, pinned by taskset.
		if err := serve(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "bench/web serve:", err)
			os.Exit(1)
		}
		return
	}
	d := flag.Duration("d", 10*time.Second, "duration of each wrk run")
	conns := flag.Int("c", 50, "wrk connections")
	rounds := flag.Int("rounds", 1, "rounds over all servers; the median is reported")
	serverCPU := flag.String("server-cpu", "0", "CPU list the servers are pinned to")
	wrkCPU := flag.String("wrk-cpu", "1", "CPU list wrk is pinned to")
	only := flag.String("servers", "nginx,lighttpd,piimage", "servers to measure")
	profile := flag.String("cpuprofile", "", "write a CPU profile of our server to this file")
	flag.Parse()
	if *profile != "" {
		abs, _ := filepath.Abs(*profile)
		os.Setenv("PIIMAGE_WEB_CPUPROFILE", abs)
	}
	b := &bench{dur: *d, conns: *conns, serverCPU: *serverCPU, wrkCPU: *wrkCPU, only: strings.Split(*only, ",")}
	if err := b.run(*rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/web:", err)
	}
}

// serve runs our server on addr over root until SIGTERM. With
// PIIMAGE_WEB_CPUPROFILE set it writes a CPU profile there.
func serve(addr, root string) error {
	if name := os.Getenv("PIIMAGE_WEB_CPUPROFILE"); name != "" {
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	s, err := web.NewServer(web.Config{Listen: addr, Root: root, NoAccessLog: true, Hostname: "bench"},
		slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return s.Run(ctx)
}

type bench struct {
	dur          time.Duration
	conns        int
	serverCPU    string
	wrkCPU       string
	dir          string
	small, large []byte
	wrk, taskset string
	self         string
	port         int
	only         []string
}

// server is one program under test.
type server struct {
	name  string
	start func(b *bench, port int) (*exec.Cmd, error)
}

// result is one wrk run.
type result struct {
	reqs, bytesPerSec float64
	p50, p99          time.Duration
}

func (b *bench) run(rounds int) error {
	var err error
	if b.wrk, err = exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not installed (apt-get install wrk): skipping the web benchmark")
	}
	if b.taskset, err = exec.LookPath("taskset"); err != nil {
		return fmt.Errorf("taskset not installed (util-linux): skipping the web benchmark")
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "piimage-bench-web-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	www := filepath.Join(b.dir, "www")
	os.MkdirAll(www, 0o755)
	b.small, b.large = make([]byte, 1<<10), make([]byte, 1<<20)
	rand.Read(b.small)
	rand.Read(b.large)
	os.WriteFile(filepath.Join(www, "1k.bin"), b.small, 0o644)
	os.WriteFile(filepath.Join(www, "1m.bin"), b.large, 0o644)
	// The temporary folder is 0700; nginx's workers read it as root.
	os.Chmod(b.dir, 0o755)

	var servers []server
	for _, s := range []server{{"nginx", startNginx}, {"lighttpd", startLighttpd}, {"piimage", startOurs}} {
		if slices.Contains(b.only, s.name) {
			servers = append(servers, s)
		}
	}
	fmt.Printf("web benchmark: %s per run, %d connections, servers on CPU %s, wrk on CPU %s, %d round(s)\n",
		b.dur, b.conns, b.serverCPU, b.wrkCPU, rounds)
	if out, err := exec.Command("uptime").Output(); err == nil {
		fmt.Printf("load before: %s", out)
	}
	small := map[string][]result{}
	large := map[string][]result{}
	var perRound []map[string][2]result
	b.port = 20000 + int(time.Now().UnixNano()%20000)
	for round := range rounds {
		this := map[string][2]result{}
		perRound = append(perRound, this)
		for _, s := range servers {
			b.port++
			rs, rl, err := b.measure(s, b.port)
			if err != nil {
				fmt.Printf("round %d %-8s skipped: %v\n", round+1, s.name, err)
				continue
			}
			fmt.Printf("round %d %-8s 1KiB %9.0f req/s p50 %-8s p99 %-8s | 1MiB %7.0f MB/s p50 %-8s p99 %s\n",
				round+1, s.name, rs.reqs, rs.p50, rs.p99, rl.bytesPerSec/1e6, rl.p50, rl.p99)
			small[s.name] = append(small[s.name], rs)
			large[s.name] = append(large[s.name], rl)
			this[s.name] = [2]result{rs, rl}
		}
	}
	if out, err := exec.Command("uptime").Output(); err == nil {
		fmt.Printf("load after: %s", out)
	}
	b.report(small, large)
	reportRatios(perRound)
	return nil
}

// reportRatios prints the median over rounds of ours against the fastest
// incumbent of the same round. Servers measured back to back share the
// machine's load, so these ratios vary less than the figures themselves
// on a busy machine.
func reportRatios(rounds []map[string][2]result) {
	var reqs, p99s, mbs, p99l []float64
	for _, r := range rounds {
		ours, ok := r["piimage"]
		if !ok {
			continue
		}
		var bs, bl result
		for _, name := range []string{"nginx", "lighttpd"} {
			if x, ok := r[name]; ok {
				if x[0].reqs > bs.reqs {
					bs = x[0]
				}
				if x[1].bytesPerSec > bl.bytesPerSec {
					bl = x[1]
				}
			}
		}
		if bs.reqs == 0 || bl.bytesPerSec == 0 {
			continue
		}
		reqs = append(reqs, ours[0].reqs/bs.reqs)
		p99s = append(p99s, float64(ours[0].p99)/float64(bs.p99))
		mbs = append(mbs, ours[1].bytesPerSec/bl.bytesPerSec)
		p99l = append(p99l, float64(ours[1].p99)/float64(bl.p99))
	}
	if len(reqs) == 0 {
		return
	}
	med := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("Per-round ratios to the round's fastest incumbent (median of %d rounds):\n", len(reqs))
	fmt.Printf("  1 KiB req/s %.2fx (target >= 1.00x), p99 %.2fx (target <= 1.20x)\n", med(reqs), med(p99s))
	fmt.Printf("  1 MiB MB/s  %.2fx (target >= 0.95x), p99 %.2fx (target <= 1.20x)\n", med(mbs), med(p99l))
}

// measure starts s, checks its answers, runs wrk on both files and stops it.
func (b *bench) measure(s server, port int) (small, large result, err error) {
	cmd, err := s.start(b, port)
	if err != nil {
		return small, large, err
	}
	defer stopByPID(cmd)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitAndCheck(base+"/1k.bin", b.small); err != nil {
		return small, large, err
	}
	if err := waitAndCheck(base+"/1m.bin", b.large); err != nil {
		return small, large, err
	}
	// Warm up (caches, TCP), then measure.
	if _, err := b.runWrk(base+"/1k.bin", time.Second); err != nil {
		return small, large, err
	}
	if small, err = b.runWrk(base+"/1k.bin", b.dur); err != nil {
		return small, large, err
	}
	large, err = b.runWrk(base+"/1m.bin", b.dur)
	return small, large, err
}

// waitAndCheck waits for url to answer and checks its body.
func waitAndCheck(url string, want []byte) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, want) {
				return fmt.Errorf("GET %s: status %d, %d bytes, want 200 and %d bytes", url, resp.StatusCode, len(got), len(want))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopByPID ends a server we started: SIGTERM to its PID, SIGKILL after 5s.
func stopByPID(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (b *bench) pinned(args ...string) *exec.Cmd {
	cmd := exec.Command(b.taskset, append([]string{"-c", b.serverCPU}, args...)...)
	cmd.Stdout = io.Discard
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd
}

func startOurs(b *bench, port int) (*exec.Cmd, error) {
	cmd := b.pinned(b.self, "-serve", fmt.Sprintf("127.0.0.1:%d", port), filepath.Join(b.dir, "www"))
	return cmd, cmd.Start()
}

func startNginx(b *bench, port int) (*exec.Cmd, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx not installed (apt-get install nginx)")
	}
	dir := filepath.Join(b.dir, fmt.Sprintf("nginx-%d", port))
	os.MkdirAll(dir, 0o755)
	conf := fmt.Sprintf(`# nginx as tuned by its users: one worker per core (one core here),
# sendfile with tcp_nopush, keep-alive, open_file_cache, no access log.
user root;
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
	worker_connections 4096;
	multi_accept on;
	use epoll;
}
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_timeout 65;
	keepalive_requests 1000000;
	open_file_cache max=1000 inactive=20s;
	open_file_cache_valid 30s;
	default_type application/octet-stream;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		root %[3]s;
	}
}
`, dir, port, filepath.Join(b.dir, "www"))
	name := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(name, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := b.pinned(bin, "-p", dir, "-c", name)
	return cmd, cmd.Start()
}

func startLighttpd(b *bench, port int) (*exec.Cmd, error) {
	bin, err := exec.LookPath("lighttpd")
	if err != nil {
		return nil, fmt.Errorf("lighttpd not installed (apt-get install lighttpd)")
	}
	dir := filepath.Join(b.dir, fmt.Sprintf("lighttpd-%d", port))
	os.MkdirAll(dir, 0o755)
	conf := fmt.Sprintf(`# lighttpd as tuned by its users: sendfile, long keep-alive, one process
# (one core here), the default stat cache, no access log.
server.document-root = "%[3]s"
server.bind = "127.0.0.1"
server.port = %[2]d
server.pid-file = "%[1]s/lighttpd.pid"
server.errorlog = "%[1]s/error.log"
server.network-backend = "sendfile"
server.max-worker = 0
server.max-connections = 4096
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 65
server.stat-cache-engine = "simple"
server.modules = ()
mimetype.assign = (".bin" => "application/octet-stream")
`, dir, port, filepath.Join(b.dir, "www"))
	name := filepath.Join(dir, "lighttpd.conf")
	if err := os.WriteFile(name, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := b.pinned(bin, "-D", "-f", name)
	return cmd, cmd.Start()
}

var (
	reqsRe    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	transRe   = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	latencyRe = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk runs wrk pinned to its CPU and parses its report.
func (b *bench) runWrk(url string, d time.Duration) (result, error) {
	var r result
	secs := max(int(d.Seconds()), 1)
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.taskset, "-c", b.wrkCPU, b.wrk, "-t1", "-c"+strconv.Itoa(b.conns),
		"-d"+strconv.Itoa(secs)+"s", "--latency", url).CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	s := string(out)
	if strings.Contains(s, "Non-2xx") || strings.Contains(s, "Socket errors") {
		return r, fmt.Errorf("wrk %s reported errors:\n%s", url, s)
	}
	m := reqsRe.FindStringSubmatch(s)
	t := transRe.FindStringSubmatch(s)
	if m == nil || t == nil {
		return r, fmt.Errorf("cannot read wrk's report:\n%s", s)
	}
	r.reqs, _ = strconv.ParseFloat(m[1], 64)
	v, _ := strconv.ParseFloat(t[1], 64)
	r.bytesPerSec = v * map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[t[2]]
	for _, l := range latencyRe.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[l[3]]
		lat := time.Duration(v * float64(unit))
		if l[1] == "50" {
			r.p50 = lat
		} else {
			r.p99 = lat
		}
	}
	return r, nil
}

// median returns the result with the median value of key.
func median(rs []result, key func(result) float64) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case key(a) < key(b):
			return -1
		case key(a) > key(b):
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func (b *bench) report(small, large map[string][]result) {
	ours, ok := small["piimage"]
	if !ok || len(large["piimage"]) == 0 {
		fmt.Println("no result for piimage")
		return
	}
	reqs := func(r result) float64 { return r.reqs }
	bps := func(r result) float64 { return r.bytesPerSec }
	fmt.Println()
	fmt.Println("1 KiB file (median of rounds):")
	fmt.Printf("  %-9s %10s %9s %9s\n", "server", "req/s", "p50", "p99")
	var bestName string
	var best result
	for _, name := range []string{"nginx", "lighttpd", "piimage"} {
		if len(small[name]) == 0 {
			continue
		}
		r := median(small[name], reqs)
		fmt.Printf("  %-9s %10.0f %9s %9s\n", name, r.reqs, r.p50, r.p99)
		if name != "piimage" && r.reqs > best.reqs {
			bestName, best = name, r
		}
	}
	o := median(ours, reqs)
	if bestName != "" {
		fmt.Printf("  piimage/%s: req/s %.2fx (target >= 1.00x), p99 %.2fx (target <= 1.20x)\n",
			bestName, o.reqs/best.reqs, float64(o.p99)/float64(best.p99))
	}
	fmt.Println("1 MiB file (median of rounds):")
	fmt.Printf("  %-9s %10s %9s %9s\n", "server", "MB/s", "p50", "p99")
	bestName, best = "", result{}
	for _, name := range []string{"nginx", "lighttpd", "piimage"} {
		if len(large[name]) == 0 {
			continue
		}
		r := median(large[name], bps)
		fmt.Printf("  %-9s %10.0f %9s %9s\n", name, r.bytesPerSec/1e6, r.p50, r.p99)
		if name != "piimage" && r.bytesPerSec > best.bytesPerSec {
			bestName, best = name, r
		}
	}
	o = median(large["piimage"], bps)
	if bestName != "" {
		fmt.Printf("  piimage/%s: MB/s %.2fx (target >= 0.95x), p99 %.2fx (target <= 1.20x)\n",
			bestName, o.bytesPerSec/best.bytesPerSec, float64(o.p99)/float64(best.p99))
	}
}

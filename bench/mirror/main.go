// Command mirror benchmarks the web-root mirror (services/mirror) against
// rsync, side by side in one run on loopback: the rsync daemon (Debian's
// rsync, started here with its config and pid file in a temp folder, on a
// free loopback port, stopped by its PID) pulled with the seed's flags
// (-azq --delete and its excludes), and our primary and replica. Both go
// through the same byte-counting TCP proxy, so "wire" is TCP payload in
// both directions (TLS included for ours); "cpu" is user and system time
// of both ends. Every run starts after a sync(2), with no dirty pages of
// the one before.
//
//	go run ./bench/mirror [-files 2000] [-mb 150] [-rounds 3] [-full-only]
//
// Phases: full copy into an empty folder (rounds alternate between rsync
// and ours, with and without fsync on each side; best and median
// reported); re-sync with no change; 1% of the files changed (8 appended,
// 8 rewritten, 4 deleted) against a replica started cold (rsync's cron
// run) and against a live replica (ours; rsync's figure is its next run);
// the time from a write on the primary until the replica has the new
// content; a burst of 1,000 changed files. It never fails the build: what
// cannot run is reported.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/piimage/piimage/services/mirror"
)

var (
	rounds     int
	fullOnly   bool
	cpuProfile string
)

func main() {
	files := flag.Int("files", 2000, "files in the tree")
	mb := flag.Int("mb", 150, "total size of the tree in MB")
	latN := flag.Int("latency-writes", 100, "writes timed for the latency figure")
	burstN := flag.Int("burst", 1000, "files changed in the burst")
	keep := flag.Bool("keep", false, "keep the temp folder")
	fsync := flag.Bool("fsync", true, "ours: fsync each file before its rename (the service's default)")
	flag.IntVar(&rounds, "rounds", 3, "rounds of the full copy and the no-change re-sync (medians are reported)")
	flag.BoolVar(&fullOnly, "full-only", false, "run the full copies only")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of our full copies to this file")
	flag.Parse()
	if err := run(*files, *mb, *latN, *burstN, *keep, *fsync); err != nil {
		fmt.Fprintln(os.Stderr, "bench/mirror:", err)
		os.Exit(1)
	}
}

type result struct {
	dur   time.Duration
	bytes int64
	cpu   time.Duration // CPU time of both ends, user and system
	note  string
}

func (r result) String() string {
	if r.note != "" && r.dur == 0 {
		return r.note
	}
	s := fmt.Sprintf("%8.3f s %10s", r.dur.Seconds(), kb(r.bytes))
	if r.cpu > 0 {
		s += fmt.Sprintf(" cpu %.2f s", r.cpu.Seconds())
	}
	if r.note != "" {
		s += "  " + r.note
	}
	return s
}

func kb(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func run(nfiles, mb, latN, burstN int, keep, fsync bool) error {
	tmp, err := os.MkdirTemp("", "piimage-bench-mirror-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(tmp)
	} else {
		fmt.Println("temp folder:", tmp)
	}
	fmt.Printf("tree: %d files, %d MB (about 60%% text, 40%% binary); 2 shared cores: figures are noisy\n", nfiles, mb)
	t0 := time.Now()
	srcR, srcO := filepath.Join(tmp, "src-rsync"), filepath.Join(tmp, "src-ours")
	if err := makeTree(srcR, nfiles, int64(mb)<<20); err != nil {
		return err
	}
	if err := makeTree(srcO, nfiles, int64(mb)<<20); err != nil {
		return err
	}
	fmt.Printf("generated two identical trees in %.1f s\n", time.Since(t0).Seconds())

	rs, err := startRsync(tmp, srcR)
	if err != nil {
		fmt.Println("rsync:", err)
	} else {
		defer rs.stop()
	}
	ours, err := startOurs(tmp, srcO, fsync)
	if err != nil {
		return err
	}
	defer ours.stop()

	type row struct {
		name       string
		rsync, our result
	}
	var rows []row
	add := func(name string, r, o result) { rows = append(rows, row{name, r, o}) }

	// Full copies and no-change re-syncs, alternating, in rounds; the
	// medians are reported.
	var fullR, fullRF, fullO, fullONF, noR, noO []result
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	for i := range rounds {
		if rs != nil {
			dst := filepath.Join(tmp, fmt.Sprintf("dst-rsync-f%d", i))
			fullRF = append(fullRF, must(rs.pull(dst, "-azq", "--fsync")))
			os.RemoveAll(dst)
			fullR = append(fullR, must(rs.pull(rs.dst, "-azq")))
			fmt.Printf("round %d: rsync -az %v, rsync -az --fsync %v\n", i+1, fullR[i], fullRF[i])
			if i < rounds-1 {
				os.RemoveAll(rs.dst)
			}
		}
		dst := filepath.Join(tmp, fmt.Sprintf("dst-ours-nf%d", i))
		fullONF = append(fullONF, must(ours.cold(dst, false)))
		os.RemoveAll(dst)
		fullO = append(fullO, must(ours.cold(ours.dst, true)))
		fmt.Printf("round %d: ours %v, ours without fsync %v\n", i+1, fullO[i], fullONF[i])
		if i < rounds-1 {
			os.RemoveAll(ours.dst)
		}
	}
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if diff := quickDiff(srcO, ours.dst); diff != "" {
		return fmt.Errorf("after the full copy the trees differ: %s", diff)
	}
	for range rounds {
		if fullOnly {
			break
		}
		if rs != nil {
			noR = append(noR, must(rs.pull(rs.dst, "-azq")))
		}
		noO = append(noO, must(ours.cold(ours.dst, fsync)))
	}
	add(fmt.Sprintf("full copy (best of %d)", rounds), best(fullR), best(fullO))
	add(fmt.Sprintf("full copy (median of %d)", rounds), median(fullR), median(fullO))
	add("  same, both fsync each file", median(fullRF), median(fullO))
	add("  same, neither fsyncs", median(fullR), median(fullONF))
	add(fmt.Sprintf("no-change re-sync (median of %d)", rounds), median(noR), median(noO))
	if fullOnly {
		rows = rows[:4]
	} else if err := ourLivePhases(rs, ours, srcR, srcO, latN, burstN, fsync, add); err != nil {
		return err
	}

	fmt.Printf("\n%-38s %-30s %-44s %s\n", "phase", "rsync -az (daemon)", "piimage mirror", "ours/rsync")
	for _, r := range rows {
		ratio := ""
		if r.rsync.dur > 0 && r.our.dur > 0 {
			ratio = fmt.Sprintf("time %.2fx", r.our.dur.Seconds()/r.rsync.dur.Seconds())
			if r.rsync.bytes > 0 {
				ratio += fmt.Sprintf(", bytes %.2fx", float64(r.our.bytes)/float64(r.rsync.bytes))
			}
		}
		if rs == nil && r.rsync.note == "" {
			r.rsync.note = "not run"
		}
		fmt.Printf("%-38s %-30s %-44s %s\n", r.name, r.rsync, r.our, ratio)
	}
	fmt.Printf("ours: replica counters %+v\n", ours.counters())
	fmt.Printf("ours: primary counters %+v\n", ours.prim.Status().Counters)
	return nil
}

// ourLivePhases runs the phases after the full copies: 1% changed (cold
// and live), latency and the burst.
func ourLivePhases(rs *rsyncd, ours *ourMirror, srcR, srcO string, latN, burstN int, fsync bool, add func(string, result, result)) error {
	// 1%: rsync's cron run against a replica started cold after the change.
	if rs != nil {
		if _, err := changeOnePercent(srcR, 1); err != nil {
			return err
		}
	}
	if _, err := changeOnePercent(srcO, 1); err != nil {
		return err
	}
	var r1 result
	if rs != nil {
		r1 = must(rs.pull(rs.dst, "-azq"))
	}
	add("1% changed, cold re-sync", r1, must(ours.cold(ours.dst, fsync)))

	// Live: a long-lived replica follows the change; rsync's figure is
	// the run after the same change.
	stopRepl, err := ours.follow(ours.dst, fsync)
	if err != nil {
		return err
	}
	defer stopRepl()
	if rs != nil {
		changeOnePercent(srcR, 2)
		r1 = must(rs.pull(rs.dst, "-azq"))
	}
	c0 := ours.prim.Status().Counters
	live, err := ours.live(func() ([]string, error) { return changeOnePercent(srcO, 2) }, false)
	if err != nil {
		return err
	}
	c1 := ours.prim.Status().Counters
	fmt.Printf("ours, 1%% live: %d files sent, %d literal bytes (before compression), %d matched\n",
		c1.FilesSent-c0.FilesSent, c1.LiteralBytes-c0.LiteralBytes, c1.MatchedBytes-c0.MatchedBytes)
	add("1% changed, live (ours) vs next run", r1, live)

	lat, err := ours.latency(latN)
	if err != nil {
		return err
	}
	add("write → replica has it", result{note: "cron: up to 300 s"}, lat)

	var rb result
	if rs != nil {
		burst(srcR, burstN, 5)
		rb = must(rs.pull(rs.dst, "-azq"))
		rb.note = "one run after it"
	}
	b, err := ours.live(func() ([]string, error) { return burst(srcO, burstN, 5) }, true)
	if err != nil {
		return err
	}
	b.note = fmt.Sprintf("%d files, first write → all there", burstN)
	add(fmt.Sprintf("burst of %d changed files", burstN), rb, b)
	if diff := quickDiff(srcO, ours.dst); diff != "" {
		return fmt.Errorf("at the end the trees differ: %s", diff)
	}
	if rs != nil {
		if diff := quickDiff(srcR, rs.dst); diff != "" {
			fmt.Println("rsync's copy differs at the end:", diff)
		}
	}

	return nil
}

func must(r result, err error) result {
	if err != nil {
		return result{note: "failed: " + err.Error()}
	}
	return r
}

// best is the fastest run: on a shared machine, the least disturbed.
func best(rs []result) result {
	if len(rs) == 0 {
		return result{}
	}
	b := rs[0]
	for _, r := range rs[1:] {
		if r.note == "" && (b.note != "" || r.dur < b.dur) {
			b = r
		}
	}
	return b
}

func median(rs []result) result {
	if len(rs) == 0 {
		return result{}
	}
	s := append([]result{}, rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].dur < s[j].dur })
	return s[len(s)/2]
}

// makeTree writes a deterministic tree: folders two deep, file sizes
// spread like a web site's (many small pages, a few large media files),
// text files compressible, binary ones not.
func makeTree(dir string, n int, total int64) error {
	r := rand.New(rand.NewPCG(42, 7))
	weights := make([]float64, n)
	var sum float64
	for i := range weights {
		w := 1 / (0.02 + r.Float64()) // heavy tail
		weights[i] = w
		sum += w
	}
	words := strings.Fields("the quick brown fox jumps over lazy dog web site page html div class span style script function return var let const mirror cluster raspberry pi node replica primary")
	for i := range n {
		size := int64(weights[i] / sum * float64(total))
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%10), fmt.Sprintf("s%02d", (i/10)%10))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		var name string
		var data []byte
		if i%5 < 3 {
			name = fmt.Sprintf("page%04d.html", i)
			var b strings.Builder
			for int64(b.Len()) < size {
				b.WriteString(words[r.IntN(len(words))])
				if r.IntN(12) == 0 {
					b.WriteString("\n")
				} else {
					b.WriteString(" ")
				}
			}
			data = []byte(b.String())[:size]
		} else {
			name = fmt.Sprintf("img%04d.jpg", i)
			data = make([]byte, size)
			for j := 0; j+8 <= len(data); j += 8 {
				v := r.Uint64()
				for k := range 8 {
					data[j+k] = byte(v >> (8 * k))
				}
			}
		}
		p := filepath.Join(sub, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		mt := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, mt, mt)
	}
	return nil
}

// changeOnePercent changes the tree as the issue measures it: 8 files
// appended, 8 rewritten, 4 deleted; salt varies the files picked.
func changeOnePercent(dir string, salt int) ([]string, error) {
	var all []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.Contains(p, "/d0") {
			all = append(all, p)
		}
		return nil
	})
	sort.Strings(all)
	r := rand.New(rand.NewPCG(uint64(salt), 99))
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	if len(all) < 20 {
		return nil, fmt.Errorf("tree too small")
	}
	var changed []string
	for _, p := range all[:20] {
		changed = append(changed, p[len(dir):])
	}
	for _, p := range all[:8] {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(f, "\n<!-- appended %d: %s -->\n", salt, strings.Repeat("more text ", 400))
		f.Close()
	}
	for _, p := range all[8:16] {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		data := make([]byte, fi.Size())
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		if strings.HasSuffix(p, ".html") {
			for i := range data {
				data[i] = 'a' + data[i]%26
			}
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
	}
	for _, p := range all[16:20] {
		os.Remove(p)
	}
	return changed, nil
}

// proxy forwards TCP connections to target and counts their bytes.
type proxy struct {
	ln     net.Listener
	target string
	n      atomic.Int64
	conns  chan net.Conn
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 128<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						p.n.Add(int64(n))
						if _, werr := dst.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go pipe(u, c)
			go pipe(c, u)
			<-done
			<-done
		}()
	}
}

func (p *proxy) close() { p.ln.Close() }

// rsyncd is the rsync daemon serving src, behind a counting proxy.
type rsyncd struct {
	bin string
	cmd *exec.Cmd
	px  *proxy
	dst string
}

// startRsync starts the rsync daemon on a free loopback port with its
// config and pid file in tmp.
func startRsync(tmp, src string) (*rsyncd, error) {
	bin, err := exec.LookPath("rsync")
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install rsync)")
	}
	ver, _ := exec.Command(bin, "--version").Output()
	fmt.Println(strings.SplitN(string(ver), "\n", 2)[0])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cdir := filepath.Join(tmp, "rsyncd")
	os.MkdirAll(cdir, 0o755)
	conf := filepath.Join(cdir, "rsyncd.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`pid file = %s/rsyncd.pid
use chroot = no
log file = %s/rsyncd.log
[src]
	path = %s
	read only = yes
	uid = root
	gid = root
`, cdir, cdir, src)), 0o644)
	d := exec.Command(bin, "--daemon", "--no-detach", "--config="+conf, "--address=127.0.0.1", fmt.Sprintf("--port=%d", port))
	if err := d.Start(); err != nil {
		return nil, fmt.Errorf("starting the daemon: %w", err)
	}
	r := &rsyncd{bin: bin, cmd: d, dst: filepath.Join(tmp, "dst-rsync")}
	target := fmt.Sprintf("127.0.0.1:%d", port)
	if !waitUntil(5*time.Second, func() bool {
		c, err := net.Dial("tcp", target)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		r.stop()
		return nil, fmt.Errorf("the daemon did not listen")
	}
	if r.px, err = newProxy(target); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// procCPU is the CPU time of process pid and its reaped children (the
// daemon's per-connection processes), from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		var v int64
		fmt.Sscan(f[i], &v)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// selfCPU is this process's CPU time (our primary and replica both run
// in it).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stop ends the daemon we started, by its PID.
func (r *rsyncd) stop() {
	if r.px != nil {
		r.px.close()
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

// pull runs the rsync client with the seed's excludes and --delete.
func (r *rsyncd) pull(dst string, flags ...string) (result, error) {
	syscall.Sync() // start each run with no dirty pages of the last one
	before := r.px.n.Load()
	dcpu := procCPU(r.cmd.Process.Pid)
	args := append(flags, "--delete", "--exclude=**/stats", "--exclude=**/error", "--exclude=**/files/pictures",
		fmt.Sprintf("rsync://%s/src/", r.px.addr()), dst+"/")
	t := time.Now()
	cmd := exec.Command(r.bin, args...)
	b, err := cmd.CombinedOutput()
	dur := time.Since(t)
	time.Sleep(50 * time.Millisecond) // let the proxy count the last bytes, the daemon reap its child
	if err != nil {
		return result{}, fmt.Errorf("rsync %v: %w: %s", args, err, b)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime() + procCPU(r.cmd.Process.Pid) - dcpu
	return result{dur: dur, bytes: r.px.n.Load() - before, cpu: cpu}, nil
}

// burst writes n small files under dir/burst.
func burst(dir string, n, salt int) ([]string, error) {
	b := filepath.Join(dir, "burst")
	if err := os.MkdirAll(b, 0o755); err != nil {
		return nil, err
	}
	var changed []string
	for i := range n {
		name := fmt.Sprintf("/burst/f%04d.html", i)
		data := fmt.Appendf(nil, "<p>burst %d file %d</p>\n%s", salt, i, strings.Repeat("x", 1000+i%3000))
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
		changed = append(changed, name)
	}
	return changed, nil
}

// ourMirror is our primary, serving src behind a counting proxy, and the
// means to run replicas against it.
type ourMirror struct {
	src, dst string
	prim     *mirror.Service
	cancel   context.CancelFunc
	done     chan error
	px       *proxy
	secret   []byte
	excl     []string
	log      *slog.Logger
	repl     *mirror.Service
}

func startOurs(tmp, src string, fsync bool) (*ourMirror, error) {
	o := &ourMirror{src: src, dst: filepath.Join(tmp, "dst-ours"), secret: []byte("benchmark cluster secret, not a real one"),
		excl: []string{"**/stats", "**/error", "**/files/pictures"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pid, err := mirror.IdentityFromSecret(o.secret, "web01")
	if err != nil {
		return nil, err
	}
	t := time.Now()
	o.prim, err = mirror.NewService(mirror.Config{Name: "web01", Root: src, Listen: "127.0.0.1:0", Identity: pid, Excludes: o.excl}, o.log)
	if err != nil {
		return nil, err
	}
	var ctx context.Context
	ctx, o.cancel = context.WithCancel(context.Background())
	o.done = make(chan error, 1)
	go func() { o.done <- o.prim.Run(ctx) }()
	if !waitUntil(30*time.Second, func() bool { return o.prim.ListenAddr() != "" }) {
		return nil, fmt.Errorf("our primary did not start")
	}
	fmt.Printf("ours: the primary listed its tree in %.3f s (once, at start; not counted below)\n", time.Since(t).Seconds())
	if o.px, err = newProxy(o.prim.ListenAddr()); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *ourMirror) stop() {
	o.px.close()
	o.cancel()
	<-o.done
}

// startReplica runs a replica of the primary into dst.
func (o *ourMirror) startReplica(dst string, fsync bool) (*mirror.Service, func(), error) {
	id, err := mirror.IdentityFromSecret(o.secret, "web02")
	if err != nil {
		return nil, nil, err
	}
	s, err := mirror.NewService(mirror.Config{Name: "web02", Root: dst, Primary: o.px.addr(), PrimaryName: "web01",
		Identity: id, Excludes: o.excl, NoFsync: !fsync}, o.log)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, func() { cancel(); <-done }, nil
}

func inSync(s *mirror.Service) bool {
	st := s.Status()
	return st.Self != nil && st.Self.InSync
}

// cold starts a replica into dst and times it until it is in sync.
func (o *ourMirror) cold(dst string, fsync bool) (result, error) {
	syscall.Sync() // start each run with no dirty pages of the last one
	before := o.px.n.Load()
	cpu := selfCPU()
	t := time.Now()
	s, stop, err := o.startReplica(dst, fsync)
	if err != nil {
		return result{}, err
	}
	defer stop()
	if !waitUntil(60*time.Second, func() bool { return inSync(s) }) {
		return result{}, fmt.Errorf("replica not in sync after 60 s: %+v", s.Status().Self)
	}
	d := time.Since(t)
	cpu = selfCPU() - cpu
	time.Sleep(50 * time.Millisecond)
	return result{dur: d, bytes: o.px.n.Load() - before, cpu: cpu}, nil
}

// follow starts the long-lived replica the live phases use.
func (o *ourMirror) follow(dst string, fsync bool) (func(), error) {
	s, stop, err := o.startReplica(dst, fsync)
	if err != nil {
		return nil, err
	}
	if !waitUntil(60*time.Second, func() bool { return inSync(s) }) {
		stop()
		return nil, fmt.Errorf("replica not in sync")
	}
	o.repl = s
	return stop, nil
}

func (o *ourMirror) counters() mirror.Counters {
	if o.repl == nil {
		return mirror.Counters{}
	}
	return o.repl.Status().Counters
}

// live makes a change on the primary and times until the replica has
// every changed path as the primary has it (checking those paths only;
// the whole trees are compared afterwards). fromStart times from the
// change's first write, else from its end.
func (o *ourMirror) live(change func() ([]string, error), fromStart bool) (result, error) {
	before := o.px.n.Load()
	t := time.Now()
	paths, err := change()
	if err != nil {
		return result{}, err
	}
	if !fromStart {
		t = time.Now() // the change is written: from here the replica lags
	}
	pending := append([]string{}, paths...)
	if !waitUntil(60*time.Second, func() bool {
		for len(pending) > 0 {
			if fileState(filepath.Join(o.src, pending[0])) != fileState(filepath.Join(o.dst, pending[0])) {
				return false
			}
			pending = pending[1:]
		}
		return true
	}) {
		return result{}, fmt.Errorf("did not converge: %s", pending[0])
	}
	d := time.Since(t)
	waitUntil(5*time.Second, func() bool { return inSync(o.repl) })
	time.Sleep(100 * time.Millisecond)
	if diff := quickDiff(o.src, o.dst); diff != "" {
		return result{}, fmt.Errorf("the trees differ after the change: %s", diff)
	}
	return result{dur: d, bytes: o.px.n.Load() - before}, nil
}

// fileState describes a file for comparison: size, mode, mtime and a hash
// of the content; "" when it does not exist.
func fileState(p string) string {
	fi, err := os.Lstat(p)
	if err != nil {
		return ""
	}
	b, _ := os.ReadFile(p)
	return fmt.Sprintf("%d %v %d %s", fi.Size(), fi.Mode(), fi.ModTime().UnixNano(), fnv(b))
}

// latency writes files on the primary one at a time and polls the
// replica's copy until it has the new content.
func (o *ourMirror) latency(n int) (result, error) {
	var lats []time.Duration
	os.MkdirAll(filepath.Join(o.src, "lat"), 0o755)
	waitUntil(5*time.Second, func() bool { _, err := os.Stat(filepath.Join(o.dst, "lat")); return err == nil })
	for i := range n {
		name := fmt.Sprintf("lat/page%d.html", i%10)
		data := fmt.Appendf(nil, "<p>version %d</p>%s", i, strings.Repeat("y", 2000))
		t := time.Now()
		if err := os.WriteFile(filepath.Join(o.src, name), data, 0o644); err != nil {
			return result{}, err
		}
		if !waitUntil(10*time.Second, func() bool {
			b, err := os.ReadFile(filepath.Join(o.dst, name))
			return err == nil && string(b) == string(data)
		}) {
			return result{}, fmt.Errorf("write %d never reached the replica", i)
		}
		lats = append(lats, time.Since(t))
		time.Sleep(time.Duration(5+i%20) * time.Millisecond)
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	p := func(q float64) time.Duration { return lats[int(q*float64(len(lats)-1))] }
	return result{note: fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, max %.0f ms (%d writes)",
		ms(p(0.5)), ms(p(0.95)), ms(lats[len(lats)-1]), len(lats))}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// quickDiff compares two trees by names, sizes, modes and mtimes of files,
// and the content of files up to 64 KB; "" when equal.
func quickDiff(a, b string) string {
	la, lb := list(a), list(b)
	for p, x := range la {
		if y, ok := lb[p]; !ok || x != y {
			return fmt.Sprintf("%s: %q vs %q", p, x, y)
		}
	}
	for p := range lb {
		if _, ok := la[p]; !ok {
			return "extra " + p
		}
	}
	return ""
}

func list(dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".~mirror.") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		v := fmt.Sprintf("%d %v %d", fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
		if fi.Size() <= 64<<10 {
			b, _ := os.ReadFile(p)
			v += " " + string(fnv(b))
		}
		out[p[len(dir):]] = v
		return nil
	})
	return out
}

func fnv(b []byte) []byte {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return fmt.Appendf(nil, "%x", h)
}

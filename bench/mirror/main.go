// Command mirror benchmarks the web-root mirror (services/mirror) against
// rsync, side by side in one run on loopback: the rsync daemon (Debian's
// rsync, started here with its config and pid file in a temp folder, on a
// high port, stopped by PID) pulled with the seed's flags, and our primary
// and replica. Both go through the same byte-counting TCP proxy, so "wire"
// is TCP payload in both directions (TLS included for ours).
//
//	go run ./bench/mirror [-files 2000] [-mb 150]
//
// Phases: full copy into an empty folder; re-sync with no change; 1% of the
// files changed (8 appended, 8 rewritten, 4 deleted); then ours only: time
// from a write on the primary until the replica has the new content, and a
// burst of 1,000 changed files. It never fails the build: what cannot run
// is reported.
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
	"time"

	"github.com/piimage/piimage/services/mirror"
)

var cpuProfile string

func main() {
	files := flag.Int("files", 2000, "files in the tree")
	mb := flag.Int("mb", 150, "total size of the tree in MB")
	latN := flag.Int("latency-writes", 100, "writes timed for the latency figure")
	burstN := flag.Int("burst", 1000, "files changed in the burst")
	keep := flag.Bool("keep", false, "keep the temp folder")
	fsync := flag.Bool("fsync", true, "ours: fsync each file before its rename (the service's default)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of our full copy to this file")
	flag.Parse()
	if err := run(*files, *mb, *latN, *burstN, *keep, *fsync); err != nil {
		fmt.Fprintln(os.Stderr, "bench/mirror:", err)
		os.Exit(1)
	}
}

type result struct {
	dur   time.Duration
	bytes int64
	note  string
}

func (r result) String() string {
	if r.note != "" && r.dur == 0 {
		return r.note
	}
	s := fmt.Sprintf("%8.3f s %10s", r.dur.Seconds(), kb(r.bytes))
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
	fmt.Printf("generated two identical trees in %.1f s\n\n", time.Since(t0).Seconds())

	rs, rsErr := rsyncPhases(tmp, srcR)
	ours, err := ourPhases(tmp, srcO, latN, burstN, fsync)
	if err != nil {
		return err
	}
	fmt.Printf("%-34s %-30s %-30s %s\n", "phase", "rsync -az (daemon)", "piimage mirror", "ours/rsync")
	for _, ph := range []string{"full copy", "no-change re-sync", "1% changed (cold re-sync)", "1% changed (live)", "write→replica latency", "burst of changes"} {
		o, r := ours[ph], rs[ph]
		ratio := ""
		if r.dur > 0 && o.dur > 0 {
			ratio = fmt.Sprintf("time %.2fx", o.dur.Seconds()/r.dur.Seconds())
			if r.bytes > 0 {
				ratio += fmt.Sprintf(", bytes %.2fx", float64(o.bytes)/float64(r.bytes))
			}
		}
		if rsErr != nil && r.note == "" {
			r.note = "not run: " + rsErr.Error()
		}
		fmt.Printf("%-34s %-30s %-30s %s\n", ph, r, o, ratio)
	}
	if n := ours["rsync -a (no -z) full copy"]; n.note != "" {
		fmt.Println(n.note)
	}
	if r, ok := rs["rsync -a full copy"]; ok {
		fmt.Printf("%-34s %-30s\n", "full copy, rsync -a (no -z)", r)
	}
	return nil
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
func changeOnePercent(dir string, salt int) error {
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
		return fmt.Errorf("tree too small")
	}
	for _, p := range all[:8] {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "\n<!-- appended %d: %s -->\n", salt, strings.Repeat("more text ", 400))
		f.Close()
	}
	for _, p := range all[8:16] {
		fi, err := os.Stat(p)
		if err != nil {
			return err
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
			return err
		}
	}
	for _, p := range all[16:20] {
		os.Remove(p)
	}
	return nil
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

// rsyncPhases runs the rsync daemon and pulls from it with the seed's flags.
func rsyncPhases(tmp, src string) (map[string]result, error) {
	out := map[string]result{}
	bin, err := exec.LookPath("rsync")
	if err != nil {
		return out, fmt.Errorf("rsync not installed (apt-get install rsync)")
	}
	ver, _ := exec.Command(bin, "--version").Output()
	fmt.Println(strings.SplitN(string(ver), "\n", 2)[0])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return out, err
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
		return out, fmt.Errorf("starting rsync daemon: %w", err)
	}
	defer func() {
		d.Process.Kill() // the PID we started, nothing else
		d.Wait()
	}()
	target := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", target); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			return out, fmt.Errorf("rsync daemon did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	px, err := newProxy(target)
	if err != nil {
		return out, err
	}
	defer px.close()
	pull := func(dst string, flags ...string) (result, error) {
		before := px.n.Load()
		args := append(flags, "--delete", "--exclude=**/stats", "--exclude=**/error", "--exclude=**/files/pictures",
			fmt.Sprintf("rsync://%s/src/", px.addr()), dst+"/")
		t := time.Now()
		cmd := exec.Command(bin, args...)
		b, err := cmd.CombinedOutput()
		dur := time.Since(t)
		time.Sleep(50 * time.Millisecond) // let the proxy count the last bytes
		if err != nil {
			return result{}, fmt.Errorf("rsync %v: %w: %s", args, err, b)
		}
		return result{dur: dur, bytes: px.n.Load() - before}, nil
	}
	dst := filepath.Join(tmp, "dst-rsync")
	r, err := pull(dst, "-azq")
	if err != nil {
		return out, err
	}
	out["full copy"] = r
	if out["no-change re-sync"], err = pull(dst, "-azq"); err != nil {
		return out, err
	}
	if err := changeOnePercent(src, 1); err != nil {
		return out, err
	}
	if out["1% changed (cold re-sync)"], err = pull(dst, "-azq"); err != nil {
		return out, err
	}
	out["1% changed (live)"] = result{note: "n/a (runs from cron)"}
	out["write→replica latency"] = result{note: "cron: up to 300 s"}
	if err := burst(src, 1000, 5); err != nil {
		return out, err
	}
	b, err := pull(dst, "-azq")
	if err != nil {
		return out, err
	}
	b.note = "one run after it"
	out["burst of changes"] = b
	if diff := quickDiff(src, dst); diff != "" {
		fmt.Println("rsync copy differs:", diff)
	}
	if r, err := pull(filepath.Join(tmp, "dst-rsync-a"), "-aq"); err == nil {
		out["rsync -a full copy"] = r
	}
	return out, nil
}

// burst writes n small files under dir/burst.
func burst(dir string, n, salt int) error {
	b := filepath.Join(dir, "burst")
	if err := os.MkdirAll(b, 0o755); err != nil {
		return err
	}
	for i := range n {
		data := fmt.Appendf(nil, "<p>burst %d file %d</p>\n%s", salt, i, strings.Repeat("x", 1000+i%3000))
		if err := os.WriteFile(filepath.Join(b, fmt.Sprintf("f%04d.html", i)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ourPhases runs our primary and replica.
func ourPhases(tmp, src string, latN, burstN int, fsync bool) (map[string]result, error) {
	out := map[string]result{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	secret := []byte("benchmark cluster secret, not a real one")
	pid, err := mirror.IdentityFromSecret(secret, "web01")
	if err != nil {
		return nil, err
	}
	excl := []string{"**/stats", "**/error", "**/files/pictures"}
	t := time.Now()
	prim, err := mirror.NewService(mirror.Config{Name: "web01", Root: src, Listen: "127.0.0.1:0", Identity: pid, Excludes: excl}, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pdone := make(chan error, 1)
	go func() { pdone <- prim.Run(ctx) }()
	for prim.ListenAddr() == "" {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("ours: primary listed its tree in %.3f s (once, at start; not counted below)\n", time.Since(t).Seconds())
	px, err := newProxy(prim.ListenAddr())
	if err != nil {
		return nil, err
	}
	defer px.close()
	dst := filepath.Join(tmp, "dst-ours")
	rid, err := mirror.IdentityFromSecret(secret, "web02")
	if err != nil {
		return nil, err
	}
	rcfg := mirror.Config{Name: "web02", Root: dst, Primary: px.addr(), PrimaryName: "web01", Identity: rid, Excludes: excl, NoFsync: !fsync}
	startReplica := func() (*mirror.Service, func(), error) {
		s, err := mirror.NewService(rcfg, log)
		if err != nil {
			return nil, nil, err
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		return s, func() { rcancel(); <-done }, nil
	}
	inSync := func(s *mirror.Service) bool {
		st := s.Status()
		return st.Self != nil && st.Self.InSync
	}
	cold := func() (result, error) {
		before := px.n.Load()
		t := time.Now()
		s, stop, err := startReplica()
		if err != nil {
			return result{}, err
		}
		defer stop()
		if !waitUntil(60*time.Second, func() bool { return inSync(s) }) {
			return result{}, fmt.Errorf("replica not in sync after 60 s: %+v", s.Status().Self)
		}
		d := time.Since(t)
		time.Sleep(50 * time.Millisecond)
		return result{dur: d, bytes: px.n.Load() - before}, nil
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return nil, err
		}
		pprof.StartCPUProfile(f)
	}
	out["full copy"], err = cold()
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, err
	}
	if diff := quickDiff(src, dst); diff != "" {
		return nil, fmt.Errorf("after the full copy the trees differ: %s", diff)
	}
	if out["no-change re-sync"], err = cold(); err != nil {
		return nil, err
	}
	if err := changeOnePercent(src, 1); err != nil {
		return nil, err
	}
	if out["1% changed (cold re-sync)"], err = cold(); err != nil {
		return nil, err
	}

	// The rest runs against one long-lived replica.
	s, stop, err := startReplica()
	if err != nil {
		return nil, err
	}
	defer stop()
	if !waitUntil(60*time.Second, func() bool { return inSync(s) }) {
		return nil, fmt.Errorf("replica not in sync")
	}
	before := px.n.Load()
	t = time.Now()
	if err := changeOnePercent(src, 2); err != nil {
		return nil, err
	}
	if !waitUntil(30*time.Second, func() bool { return quickDiff(src, dst) == "" }) {
		return nil, fmt.Errorf("live 1%% change did not converge: %s", quickDiff(src, dst))
	}
	d := time.Since(t)
	waitUntil(5*time.Second, func() bool { return inSync(s) })
	time.Sleep(100 * time.Millisecond)
	out["1% changed (live)"] = result{dur: d, bytes: px.n.Load() - before, note: "write → replica equal"}

	// Latency: write on the primary, poll the replica's file.
	var lats []time.Duration
	os.MkdirAll(filepath.Join(src, "lat"), 0o755)
	waitUntil(5*time.Second, func() bool { _, err := os.Stat(filepath.Join(dst, "lat")); return err == nil })
	for i := range latN {
		name := fmt.Sprintf("lat/page%d.html", i%10)
		data := fmt.Appendf(nil, "<p>version %d</p>%s", i, strings.Repeat("y", 2000))
		t := time.Now()
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			return nil, err
		}
		ok := waitUntil(10*time.Second, func() bool {
			b, err := os.ReadFile(filepath.Join(dst, name))
			return err == nil && string(b) == string(data)
		})
		if !ok {
			return nil, fmt.Errorf("write %d never reached the replica", i)
		}
		lats = append(lats, time.Since(t))
		time.Sleep(time.Duration(5+i%20) * time.Millisecond)
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	p := func(q float64) time.Duration { return lats[int(q*float64(len(lats)-1))] }
	out["write→replica latency"] = result{note: fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, max %.0f ms (%d writes)",
		ms(p(0.5)), ms(p(0.95)), ms(lats[len(lats)-1]), len(lats))}

	before = px.n.Load()
	t = time.Now()
	if err := burst(src, burstN, 5); err != nil {
		return nil, err
	}
	if !waitUntil(60*time.Second, func() bool { return quickDiff(filepath.Join(src, "burst"), filepath.Join(dst, "burst")) == "" }) {
		return nil, fmt.Errorf("burst did not converge")
	}
	d = time.Since(t)
	time.Sleep(50 * time.Millisecond)
	out["burst of changes"] = result{dur: d, bytes: px.n.Load() - before, note: fmt.Sprintf("%d files, first write → all on replica", burstN)}
	if diff := quickDiff(src, dst); diff != "" {
		return nil, fmt.Errorf("at the end the trees differ: %s", diff)
	}
	st := s.Status()
	fmt.Printf("ours: replica counters %+v\n", st.Counters)
	return out, nil
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

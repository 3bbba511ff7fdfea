package node

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/piimage/piimage/internal/netnstest"
)

// Bounds of the flood test.
const (
	floodFor      = 5 * time.Second
	floodMaxSYNs  = 150_000
	floodIdle     = 1500 // idle connections attempted
	floodIdleSrcs = 5    // source addresses they come from
)

// TestFloodKeepsVRRPAndHealthChecks runs two load balancers (the init in
// process mode, lbmaster and lbbackup) in front of a web backend, then
// floods both balancers' port 80 from an attacker for a bounded time: raw
// SYNs (half from forged addresses, half from the attacker's own) and
// idle connections from several addresses. Throughout, the VIP must stay
// on the master (VRRP keeps flowing), both balancers must keep checking
// the backend, and a client must keep getting answers through the VIP.
func TestFloodKeepsVRRPAndHealthChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for several seconds")
	}
	l := netnstest.NewLab(t, "flood")
	lb1, lb2 := l.Add("lb1", 0), l.Add("lb2", 0)
	web, client, attacker := l.Add("web", 9), l.Add("client", 20), l.Add("attacker", 50)
	bin := buildInit(t)
	dir := t.TempDir()

	// The backend counts the balancers' health checks per source.
	var mu sync.Mutex
	checks := map[string]int{}
	ln, err := web.Listen("tcp4", web.Addr+":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			mu.Lock()
			checks[host]++
			mu.Unlock()
		}
		fmt.Fprintln(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	checksBy := func(addr string) int {
		mu.Lock()
		defer mu.Unlock()
		return checks[addr]
	}

	lbOverlay := func(name, role string, prio int, self, peer string) string {
		return labSub(l, fmt.Sprintf(`hostname: %s
role: %s
interfaces:
  eth0: {address: %s/24, gateway: PFX.1}
vip: {router_id: 71, priority: %d, address: PFX.100/24, advert_interval: 200ms}
balancer:
  port: 80
  backends: [{name: web, address: "PFX.9:80"}]
  check: {path: /healthz, interval: 200ms, timeout: 1s, fall: 3, rise: 2}
firewall: {vrrp_peers: [%s], rate_limit: {per_second: 100, burst: 200}}
time: {disabled: true}
`, name, role, self, prio, peer))
	}
	// The nodes' addresses, which they configure themselves.
	lb1Addr, lb2Addr := l.Addr(2), l.Addr(3)
	var nodes []*runningNode
	for i, n := range []struct {
		name, role string
		host       *netnstest.Host
	}{{"lb1", "lbmaster", lb1}, {"lb2", "lbbackup", lb2}} {
		self, peer := lb1Addr, lb2Addr
		prio := 150
		if i == 1 {
			self, peer, prio = peer, self, 100
		}
		ov := filepath.Join(dir, n.name+".yaml")
		writeFile(t, ov, lbOverlay(n.name, n.role, prio, self, peer))
		nodes = append(nodes, startNode(t, n.host.NS, bin, "--state", filepath.Join(dir, n.name), "--overlay", ov))
	}
	for i, n := range nodes {
		n.waitOutput(t, fmt.Sprintf("lb%d up", i+1))
	}
	vip := labSub(l, "PFX.100")
	hasVIP := func(h *netnstest.Host) bool {
		ns, err := netns.GetFromPath(h.Path())
		if err != nil {
			return false
		}
		defer ns.Close()
		hd, err := netlink.NewHandleAt(ns)
		if err != nil {
			return false
		}
		defer hd.Close()
		addrs, err := hd.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return false
		}
		for _, a := range addrs {
			if a.IP.String() == vip {
				return true
			}
		}
		return false
	}
	httpClient := clientIn(client.NS, 2*time.Second)
	ask := func() bool {
		resp, err := httpClient.Get("http://" + vip + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	// Settle: the master holds the VIP and the VIP answers.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if hasVIP(lb1) && !hasVIP(lb2) && ask() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VIP never settled on lb1 (lb1 %v, lb2 %v)\n%s\n%s", hasVIP(lb1), hasVIP(lb2), nodes[0].output(), nodes[1].output())
		}
	}

	// The flood, and the watchers.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var flips, samples, answered, asked atomic.Int32
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			samples.Add(1)
			if !hasVIP(lb1) || hasVIP(lb2) {
				flips.Add(1)
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			asked.Add(1)
			if ask() {
				answered.Add(1)
			}
		}
	})
	before1, before2 := checksBy(lb1Addr), checksBy(lb2Addr)
	var synsSent int
	var synTime time.Duration
	var idleOpen int
	wg.Go(func() {
		start := time.Now()
		synsSent = synFlood(t, attacker, []string{lb1Addr, lb2Addr, vip}, floodFor, floodMaxSYNs)
		synTime = time.Since(start)
	})
	wg.Go(func() { idleOpen = idleFlood(t, l, attacker, vip, floodFor) })
	time.Sleep(floodFor)
	// Public ports are not tracked: the flood leaves conntrack's table
	// (which the node's own connections need) nearly empty.
	out, cterr := lb1.Command("cat", "/proc/sys/net/netfilter/nf_conntrack_count").CombinedOutput()
	tracked := strings.TrimSpace(string(out))
	close(stop)
	wg.Wait()
	if n, err := strconv.Atoi(tracked); cterr == nil && err == nil {
		t.Logf("lb1 conntrack entries at the end of the flood: %d", n)
		if n > 1000 {
			t.Errorf("lb1 tracks %d connections after the flood; public ports should be untracked", n)
		}
	}
	during1, during2 := checksBy(lb1Addr)-before1, checksBy(lb2Addr)-before2

	t.Logf("flood: %d SYNs in %v, %d of %d idle connections open; VIP samples %d (wrong %d); client %d/%d answered; health checks lb1 %d lb2 %d",
		synsSent, synTime.Round(time.Millisecond), idleOpen, floodIdle, samples.Load(), flips.Load(), answered.Load(), asked.Load(), during1, during2)
	if flips.Load() != 0 {
		t.Errorf("the VIP left lb1 (or lb2 took it) in %d of %d samples during the flood", flips.Load(), samples.Load())
	}
	// Checks every 200ms: expect about 25 in 5 s; allow slow scheduling.
	if during1 < 10 || during2 < 10 {
		t.Errorf("health checks during the flood: lb1 %d, lb2 %d; want about %d each", during1, during2, int(floodFor/(200*time.Millisecond)))
	}
	if a, q := answered.Load(), asked.Load(); q == 0 || float64(a) < 0.9*float64(q) {
		t.Errorf("the client got %d answers to %d requests through the VIP during the flood", a, q)
	}
	if synsSent < 1000 {
		t.Errorf("only %d SYNs sent: the flood did not happen", synsSent)
	}
	st := statusFrom(t, client.NS, "http://"+lb1Addr+":9000/status")
	if st.Firewall == nil || st.Firewall.Counters["rate_limited"].Packets == 0 {
		t.Errorf("lb1's firewall limited nothing: %+v", st.Firewall)
	} else {
		t.Logf("lb1 firewall counters: %+v", st.Firewall.Counters)
	}
	// Each service runs with only its own capabilities (caps_linux.go),
	// and the VIP still works with them (above).
	wantCaps := map[string]uint64{
		"balancer": 1 << unix.CAP_NET_BIND_SERVICE,
		"vip":      1<<unix.CAP_NET_BIND_SERVICE | 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW,
	}
	for _, s := range st.Services {
		if s.Restarts > 0 || !s.Healthy() {
			t.Errorf("lb1 service %s after the flood: %+v", s.Name, s)
		}
		if want, ok := wantCaps[s.Name]; ok {
			if got := procStatus(t, s.PID)["CapEff"]; got != fmt.Sprintf("%016x", want) {
				t.Errorf("lb1 service %s has CapEff %s, want %016x", s.Name, got, want)
			}
		}
	}
	// The backup kept hearing the master's adverts through its firewall.
	st2 := statusFrom(t, client.NS, "http://"+lb2Addr+":9000/status")
	if st2.Firewall == nil || st2.Firewall.Counters["vrrp"].Packets < 20 || st2.Firewall.Counters["vrrp_strangers"].Packets != 0 {
		t.Errorf("lb2's VRRP counters: %+v", st2.Firewall)
	}
	for _, n := range nodes {
		if err := n.stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	}
}

// synFlood sends max raw TCP SYNs, spread over d, to port 80 of the
// targets from the attacker: half from the attacker's own address,
// half from forged addresses in 10.250.0.0/16 (which exist nowhere). The
// socket is made inside the attacker's namespace.
func synFlood(t *testing.T, attacker *netnstest.Host, targets []string, d time.Duration, max int) int {
	var fd int
	err := attacker.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		return err
	})
	if err != nil {
		t.Errorf("raw socket: %v", err)
		return 0
	}
	defer unix.Close(fd)
	own := netip.MustParseAddr(attacker.Addr).As4()
	var dsts [][4]byte
	for _, tg := range targets {
		dsts = append(dsts, netip.MustParseAddr(tg).As4())
	}
	pkt := make([]byte, 40)
	sent := 0
	start := time.Now()
	deadline := start.Add(d)
	for sent < max && time.Now().Before(deadline) {
		// Spread the packets over d (in batches of 1000).
		if sent%1000 == 0 {
			if ahead := time.Duration(int64(d)*int64(sent)/int64(max)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		src := own
		if sent%2 == 1 {
			src = [4]byte{10, 250, byte(rand.IntN(256)), byte(rand.IntN(256))}
		}
		dst := dsts[sent%len(dsts)]
		buildSYN(pkt, src, dst, uint16(1024+rand.IntN(60000)), 80, rand.Uint32())
		if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst}); err != nil && err != unix.ENOBUFS {
			t.Errorf("sending a SYN: %v", err)
			return sent
		}
		sent++
	}
	return sent
}

// buildSYN writes an IPv4+TCP SYN into pkt (40 bytes).
func buildSYN(pkt []byte, src, dst [4]byte, sport, dport uint16, seq uint32) {
	clear(pkt)
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], 40)
	pkt[8] = 64 // TTL
	pkt[9] = unix.IPPROTO_TCP
	copy(pkt[12:16], src[:])
	copy(pkt[16:20], dst[:])
	binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:20], 0))
	tcp := pkt[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4 // data offset
	tcp[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	var pseudo uint32
	for i := 0; i < 4; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	pseudo += unix.IPPROTO_TCP + 20
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudo))
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// idleFlood opens up to floodIdle connections to addr:80 from
// floodIdleSrcs addresses of the attacker (in lab l) and holds them,
// sending nothing, until d has passed; it returns how many connected.
func idleFlood(t *testing.T, l *netnstest.Lab, attacker *netnstest.Host, addr string, d time.Duration) int {
	var srcs []string
	for i := 0; i < floodIdleSrcs; i++ {
		a := l.Addr(60 + i)
		if out, err := attacker.Command("ip", "addr", "add", a+"/24", "dev", "eth0").CombinedOutput(); err != nil {
			t.Errorf("adding %s: %v %s", a, err, out)
			return 0
		}
		srcs = append(srcs, a)
	}
	dst := netip.MustParseAddr(addr).As4()
	var fds []int
	err := attacker.Do(func() error {
		for i := 0; i < floodIdle; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				break
			}
			fds = append(fds, fd)
			unix.Bind(fd, &unix.SockaddrInet4{Addr: netip.MustParseAddr(srcs[i%len(srcs)]).As4()})
			unix.Connect(fd, &unix.SockaddrInet4{Port: 80, Addr: dst})
		}
		return nil
	})
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if err != nil {
		t.Errorf("idle connections from %s: %v", attacker.Name, err)
		return 0
	}
	time.Sleep(d)
	open := 0
	for _, fd := range fds {
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v == 0 {
			if _, err := unix.Getpeername(fd); err == nil {
				open++
			}
		}
	}
	return open
}

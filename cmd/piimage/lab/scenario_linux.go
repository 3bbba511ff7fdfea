package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/piimage/piimage/overlays"
)

// Report measures the scenarios on the running lab: for each, HTTP load at
// the VIP from the client namespace, the fault after cfg.Before, the load
// going on for cfg.After, the VIP's holder polled every 5ms and the active
// balancer's view of the backend every 50ms; then the fault is healed and
// the lab settles before the next scenario.
func (l *Lab) Report(ctx context.Context, cfg ReportConfig) (*Report, error) {
	cfg.defaults()
	p := l.State.Plan
	master, ok := p.Role(overlays.RoleLBMaster)
	if !ok {
		return nil, errors.New("report: the cluster has no lbmaster")
	}
	var webs []PlanNode
	for _, n := range p.Nodes {
		if n.Role == overlays.RoleWeb {
			webs = append(webs, n)
		}
	}
	if len(webs) == 0 {
		return nil, errors.New("report: the cluster has no web node")
	}
	// The web node to fail: the last one (the first is usually the
	// mirror's primary).
	web := webs[len(webs)-1]
	rep := &Report{
		Title:   "piimage lab failover report",
		Started: time.Now(),
		Setup: []string{
			fmt.Sprintf("Lab %s: %d nodes (%s) in network namespaces on one bridge; VIP %s.", p.Name, len(p.Nodes), strings.Join(p.Hosts(), ", "), p.VIP()),
			fmt.Sprintf("Load: GET http://%s/whoami at %.0f requests/s from the client namespace (%d source addresses in turn, as many clients), each on a new connection, %v timeout; %v before the fault, %v after.", p.VIP(), cfg.Rate, max(1, len(p.ClientPool)), cfg.Timeout, cfg.Before, cfg.After),
			fmt.Sprintf("\"during\" is the %v after the fault; latencies are of answered requests (p50/p99); a failed request is an error, a timeout or a status other than 2xx/3xx.", DuringWindow),
			"Numbers come from a shared machine (2 cores, other work running): treat them as indicative.",
		},
	}
	want := func(k string) bool { return len(cfg.Only) == 0 || slices.Contains(cfg.Only, k) }
	type plan struct {
		key, name, op, target string
		check                 func(Result) bool
		fault                 func() error
		heal                  func() error
		prepare               func() error
		backend               string // watched in the balancer
		// long: the fault is an operation that takes a while (a
		// rollout); the load runs until After past its end.
		long bool
	}
	plans := []plan{
		{key: ScenarioLBLink, name: "master LB link down", target: targetLinkCut, check: checkLinkCut,
			op:    fmt.Sprintf("%s's cable pulled (its bridge port down); healed after the run.", master.Host),
			fault: func() error { return l.Fail(master.Host, HowLinkDown) }, heal: func() error { return l.Heal(master.Host) }},
		{key: ScenarioLBLinkBack, name: "master LB link back", target: "(no target)",
			op:      fmt.Sprintf("%s's cable plugged back in while the backup holds the VIP: the master preempts.", master.Host),
			prepare: func() error { return l.Fail(master.Host, HowLinkDown) },
			fault:   func() error { return l.Heal(master.Host) }},
		{key: ScenarioLBKill, name: "master LB killed", target: targetLinkCut + " (as link cut)", check: checkLinkCut,
			op:    fmt.Sprintf("Every process of %s killed at once and its link silenced (a power cut); booted again after the run.", master.Host),
			fault: func() error { return l.Fail(master.Host, HowKill) }, heal: func() error { return l.Heal(master.Host) }},
		{key: ScenarioLBReboot, name: "master LB reboot (planned handover)", target: targetPlanned, check: checkPlanned,
			op:    fmt.Sprintf("%s's init stopped cleanly (SIGTERM: the VIP is handed over), %v silent, started again; it takes the VIP back.", master.Host, bootPause),
			fault: func() error { return l.Fail(master.Host, HowReboot) }},
		{key: ScenarioWebKill, name: "web node killed (power cut)", target: targetWebKill, check: checkWebKill, backend: web.Host,
			op:    fmt.Sprintf("Every process of %s killed at once (a power cut); booted again after the run.", web.Host),
			fault: func() error { return l.Fail(web.Host, HowKill) }, heal: func() error { return l.Heal(web.Host) }},
		{key: ScenarioWebCrash, name: "web node crashed", target: targetWebKill, check: checkWebKill, backend: web.Host,
			op:    fmt.Sprintf("Every process of %s killed at once, its kernel still up (connections refused at once); booted again after the run.", web.Host),
			fault: func() error { return l.Fail(web.Host, HowCrash) }, heal: func() error { return l.Heal(web.Host) }},
		{key: ScenarioWebDrain, name: "web node drained", target: targetPlanned, check: checkPlanned, backend: web.Host,
			op:    fmt.Sprintf("%s set to drain in both load balancers' overlays, which reload (SIGHUP); undrained after the run.", web.Host),
			fault: func() error { return l.Drain(web.Host, true) }, heal: func() error { return l.Drain(web.Host, false) }},
	}
	if cfg.OTA != nil {
		plans = append(plans, plan{key: ScenarioOTA, name: "rolling OTA of all nodes", target: targetPlanned, check: checkPlanned, long: true,
			op: fmt.Sprintf("piimage rollout of %d signed images to every node, one at a time from the client namespace: backup LB, VIP handed over, master LB, then each web node drained from both LBs; each node writes its other slot, restarts into it (process mode re-executes itself) and commits after its health checks.", len(cfg.OTA.Images)),
			fault: func() error {
				_, err := l.Rollout(ctx, cfg.OTA, prefixWriter{cfg.Log, "report: rollout: "})
				return err
			}})
	}
	for _, pl := range plans {
		if !want(pl.key) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		fmt.Fprintf(cfg.Log, "report: %s\n", pl.name)
		if err := l.settle(ctx, 45*time.Second); err != nil {
			return rep, fmt.Errorf("report: before %q: %w", pl.name, err)
		}
		if pl.prepare != nil {
			if err := pl.prepare(); err != nil {
				return rep, fmt.Errorf("report: preparing %q: %w", pl.name, err)
			}
			time.Sleep(2 * time.Second)
		}
		s := &Scenario{Name: pl.name, Op: pl.op, Target: pl.target, Check: pl.check}
		err := l.measure(ctx, cfg, s, pl.fault, pl.backend, pl.long)
		if pl.heal != nil {
			if herr := pl.heal(); herr != nil {
				err = errors.Join(err, fmt.Errorf("healing: %w", herr))
			}
		}
		rep.Scenarios = append(rep.Scenarios, s)
		if err != nil {
			return rep, fmt.Errorf("report: %q: %w", pl.name, err)
		}
		r := Analyze(s.Run, s.Fault)
		fmt.Fprintf(cfg.Log, "report: %s: %d sent, %d failed, longest gap %s, VIP moved %s, backend out %s\n",
			pl.name, r.Sent, r.Failed, fmtDur(r.LongestGap), fmtDur(s.VIPMoved), fmtDur(s.BackendOut))
	}
	if want(ScenarioOTA) && cfg.OTA == nil {
		why := cfg.OTAUnavailable
		if why == "" {
			why = "not available yet"
		}
		rep.Scenarios = append(rep.Scenarios, &Scenario{Name: "rolling OTA of all nodes", Target: targetPlanned, Skipped: why})
	}
	if err := l.settle(ctx, 45*time.Second); err != nil {
		rep.Notes = append(rep.Notes, "After the last scenario the lab did not settle: "+err.Error())
	}
	return rep, nil
}

// measure runs the load around one fault and fills s.
func (l *Lab) measure(ctx context.Context, cfg ReportConfig, s *Scenario, fault func() error, backend string, long bool) error {
	p := l.State.Plan
	probe, err := l.newVIPProbe()
	if err != nil {
		return err
	}
	defer probe.Close()
	vip := p.VIP()
	holder0 := probe.holders(vip)
	t0 := time.Now().Add(50 * time.Millisecond)
	total := cfg.Before + cfg.After
	lc := LoadConfig{URL: "http://" + vip.String() + "/whoami", Rate: cfg.Rate, Duration: total, Timeout: cfg.Timeout,
		Transport: l.LoadTransport(), Start: t0}
	stopLoad := make(chan struct{})
	if long {
		lc.Duration, lc.Stop = MaxLoadDuration, stopLoad
	}

	mctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		faultAt time.Duration = -1
		events  []Event
	)
	s.VIPMoved, s.BackendOut = -1, -1
	fault0 := func() (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		return faultAt, faultAt >= 0
	}
	// The VIP's holder, every 5ms.
	wg.Go(func() {
		last := strings.Join(holder0, ",")
		for mctx.Err() == nil {
			h := probe.holders(vip)
			cur := strings.Join(h, ",")
			if cur != last {
				at := time.Since(t0)
				label := "VIP on " + cur
				if cur == "" {
					label = "VIP on no node"
				}
				mu.Lock()
				events = append(events, Event{At: at, Label: label})
				if faultAt >= 0 && s.VIPMoved < 0 && len(h) > 0 && !sameSet(h, holder0) {
					s.VIPMoved = at - faultAt
				}
				mu.Unlock()
				last = cur
			}
			sleepCtx(mctx, 5*time.Millisecond)
		}
	})
	// The active balancer's view of the backend, every 50ms.
	if backend != "" {
		wg.Go(func() {
			for mctx.Err() == nil {
				if fa, ok := fault0(); ok {
					if m, err := l.activeMetrics(mctx, probe); err == nil {
						if b := m.backend(backend); b != nil && !b.Usable {
							at := time.Since(t0)
							mu.Lock()
							s.BackendOut = at - fa
							events = append(events, Event{At: at, Label: "balancer stops sending to " + backend})
							mu.Unlock()
							return
						}
					}
				}
				sleepCtx(mctx, 50*time.Millisecond)
			}
		})
	}
	var run *LoadRun
	var loadErr error
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		run, loadErr = RunLoad(ctx, lc)
	}()
	sleepCtx(ctx, time.Until(t0.Add(cfg.Before)))
	mu.Lock()
	faultAt = time.Since(t0)
	mu.Unlock()
	ferr := fault()
	if long {
		sleepCtx(ctx, cfg.After)
		close(stopLoad)
	}
	<-loadDone
	stop()
	wg.Wait()
	s.Run, s.Fault = run, faultAt
	mu.Lock()
	s.Events = events
	mu.Unlock()
	if ferr != nil {
		return fmt.Errorf("injecting the fault: %w", ferr)
	}
	return loadErr
}

// activeMetrics reads the metrics of the balancer holding the VIP.
func (l *Lab) activeMetrics(ctx context.Context, probe *vipProbe) (balancerMetrics, error) {
	h := probe.holders(l.State.Plan.VIP())
	if len(h) == 0 {
		return balancerMetrics{}, errors.New("no node holds the VIP")
	}
	pn, _ := l.State.Plan.Node(h[0])
	return l.metrics(ctx, pn)
}

// metrics reads a load balancer's /metrics with the lab's credentials.
func (l *Lab) metrics(ctx context.Context, pn PlanNode) (balancerMetrics, error) {
	if pn.Stats == "" {
		return balancerMetrics{}, fmt.Errorf("%s has no stats page", pn.Host)
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pn.Stats+"/metrics", nil)
	if err != nil {
		return balancerMetrics{}, err
	}
	req.SetBasicAuth(StatsUser, l.State.StatsPassword)
	resp, err := l.HTTP.Do(req)
	if err != nil {
		return balancerMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return balancerMetrics{}, fmt.Errorf("%s /metrics: %s", pn.Host, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return balancerMetrics{}, err
	}
	return parseMetrics(string(b))
}

// settle waits until the lab is ready, the lbmaster holds the VIP, and
// every running load balancer sees every backend usable.
func (l *Lab) settle(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	p := l.State.Plan
	master, _ := p.Role(overlays.RoleLBMaster)
	probe, err := l.newVIPProbe()
	if err != nil {
		return err
	}
	defer probe.Close()
	for {
		why := l.notReady(ctx)
		if why == "" {
			if h := probe.holders(p.VIP()); len(h) != 1 || h[0] != master.Host {
				why = fmt.Sprintf("VIP on %v, not on %s", h, master.Host)
			}
		}
		if why == "" {
			for _, n := range p.Nodes {
				if !n.IsLB() || !l.State.nodeRunning(n.Host) {
					continue
				}
				m, err := l.metrics(ctx, n)
				if err != nil {
					why = err.Error()
					break
				}
				for _, b := range m.Backends {
					if !b.Usable {
						why = fmt.Sprintf("%s: backend %s not usable yet", n.Host, b.Name)
					}
				}
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lab did not settle within %v: %s", d, why)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

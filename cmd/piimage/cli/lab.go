package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/piimage/piimage/cmd/piimage/lab"
	"github.com/piimage/piimage/overlays"
)

func labCommand() command {
	return command{
		name:  "lab",
		short: "run the cluster on this machine in network namespaces, inject faults, measure failovers",
		run:   runLab,
	}
}

// labSub is one `piimage lab` subcommand.
type labSub struct {
	name, synopsis, short string
	run                   func(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error
}

// labGlobal are the flags every lab subcommand takes.
type labGlobal struct {
	name, runDir string
}

func labSubs() []labSub {
	return []labSub{
		{"up", "lab up [CLUSTER] [--init BIN] [--src DIR]", "start the cluster (default: the source tree's overlays/) as nodes in namespaces", runLabUp},
		{"down", "lab down", "stop every node and remove every namespace, link and file of the lab (also after a crash)", runLabDown},
		{"status", "lab status", "list the nodes, their processes, services, faults and who holds the VIP", runLabStatus},
		{"exec", "lab exec NODE|client -- COMMAND [ARG...]", "run a command inside a node's namespace (or the client's)", runLabExec},
		{"fail", "lab fail NODE --how " + strings.Join(lab.Faults(), "|"), "inject a fault", runLabFail},
		{"heal", "lab heal [NODE]", "undo the faults of a node (or all), booting killed nodes", runLabHeal},
		{"drain", "lab drain NODE [--undo]", "stop (or resume) sending requests to a web node, by reloading the load balancers", runLabDrain},
		{"load", "lab load [--rate R] [--duration D] [--out FILE.csv]", "drive HTTP load at the VIP from the client namespace and record every request", runLabLoad},
		{"rollout", "lab rollout IMAGE... [--keys DIR]", "update the lab's nodes one at a time with signed images (the lab must be up with --images)", runLabRollout},
		{"report", "lab report [CLUSTER] [--html FILE]", "measure failovers (a lab is brought up for it when none is) and print the table", runLabReport},
		{"dashboard", "lab dashboard [--listen 127.0.0.1:8377]", "serve the cluster dashboard on this machine's loopback", runLabDashboard},
	}
}

func runLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	subs := labSubs()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		labUsage(stdout, subs)
		if len(args) == 0 {
			return &usageError{"lab: name a subcommand"}
		}
		return nil
	}
	for _, s := range subs {
		if s.name != args[0] {
			continue
		}
		return s.run(ctx, labGlobal{}, args[1:], stdout, stderr)
	}
	return &usageError{fmt.Sprintf("lab: unknown subcommand %q (try: piimage lab help)", args[0])}
}

func labUsage(w io.Writer, subs []labSub) {
	fmt.Fprintln(w, "piimage lab runs the cluster on this machine: one network namespace per node on a bridge")
	fmt.Fprintln(w, "(itself in a namespace), the real init in each, and a client namespace to reach them.")
	fmt.Fprintln(w, "The overlay's addresses exist only inside the lab's namespaces. Needs root.")
	fmt.Fprintln(w, "\nUsage: piimage lab SUBCOMMAND [flags]\n\nSubcommands:")
	for _, s := range subs {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.short)
	}
	fmt.Fprintf(w, "\nFaults: %s. Every subcommand takes --name (default %s) and --run-dir (default %s).\n",
		strings.Join(lab.Faults(), ", "), lab.DefaultName, lab.DefaultRunDir)
}

// labFlags returns a flag set with the global lab flags bound to g.
func labFlags(g *labGlobal, name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet(name, synopsis, stderr)
	fs.StringVar(&g.name, "name", lab.DefaultName, "the lab's name: prefix of its namespaces")
	fs.StringVar(&g.runDir, "run-dir", lab.DefaultRunDir, "folder of the labs' state")
	return fs
}

// openLab opens the running lab, saying what to do when there is none.
func openLab(g labGlobal) (*lab.Lab, error) {
	l, err := lab.Open(g.runDir, g.name)
	if errors.Is(err, lab.ErrNoLab) {
		return nil, fmt.Errorf("%w: start one with `piimage lab up`", err)
	}
	return l, err
}

func runLabUp(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	var initBin, src, images, keys string
	fs := labFlags(&g, "lab up", "lab up [CLUSTER] [--init BIN] [--src DIR] [--images A.img,B.img,... [--keys DIR]]", stderr)
	fs.StringVar(&initBin, "init", "", "init binary built for this machine (default: built from the source tree)")
	fs.StringVar(&src, "src", "", "piimage source tree (default: found from the current folder)")
	fs.StringVar(&images, "images", "", "comma-separated signed images, one per role: every node boots its role's from a card folder and takes updates (lab rollout)")
	fs.StringVar(&keys, "keys", "", "the keys folder the images were built with (default: .keys in the source tree)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return &usageError{"lab up: name at most one cluster folder"}
	}
	if err := lab.Available(); err != nil {
		return err
	}
	var cards *lab.Cards
	if images != "" {
		if cards, err = labCards(splitList(images), keys, src); err != nil {
			return err
		}
	}
	l, err := labUp(ctx, g, pos, initBin, src, cards, stdout)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Fprintf(stdout, "\nThe lab runs until `piimage lab down`. Try:\n")
	fmt.Fprintf(stdout, "  piimage lab status\n  piimage lab exec client -- curl -s http://%s/whoami\n", l.State.Plan.VIP())
	fmt.Fprintf(stdout, "  piimage lab dashboard            # then open http://127.0.0.1:8377/\n")
	fmt.Fprintf(stdout, "  piimage lab fail lbmaster --how link-down; piimage lab heal\n")
	return nil
}

// labUp loads the cluster, finds or builds the init and brings the lab up.
func labUp(ctx context.Context, g labGlobal, pos []string, initBin, src string, cards *lab.Cards, log io.Writer) (*lab.Lab, error) {
	cluster := ""
	if len(pos) == 1 {
		cluster = pos[0]
	}
	if cluster == "" || initBin == "" {
		tree, err := findSource(src)
		if err != nil && (cluster == "" || initBin == "") {
			return nil, fmt.Errorf("%v (or pass the cluster folder and --init)", err)
		}
		if cluster == "" {
			cluster = filepath.Join(tree, "overlays")
		}
		if initBin == "" {
			dir, err := os.MkdirTemp("", "piimage-lab-init-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			initBin = filepath.Join(dir, "init")
			fmt.Fprintf(log, "lab: building the init for this machine from %s\n", tree)
			cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", initBin, "./cmd/init")
			cmd.Dir = tree
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("building the init: %v\n%s", err, out)
			}
		}
	}
	nodes, err := overlays.LoadDir(cluster)
	if err != nil {
		return nil, err
	}
	return lab.Up(ctx, lab.Config{Name: g.name, RunDir: g.runDir, Init: initBin, Nodes: nodes, Log: log, Cards: cards})
}

func runLabDown(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	fs := labFlags(&g, "lab down", "lab down", stderr)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return &usageError{"lab down: takes no arguments"}
	}
	return lab.Down(g.runDir, g.name, stdout)
}

func runLabStatus(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	fs := labFlags(&g, "lab status", "lab status", stderr)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return &usageError{"lab status: takes no arguments"}
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	st := l.State
	p := st.Plan
	fmt.Fprintf(stdout, "lab %s (since %s): %s, client %s in %s, VIP %s\n", p.Name, st.Created.Local().Format(time.DateTime), p.Subnet, p.Client.Addr(), p.ClientNS, p.VIP())
	v := l.Dashboard().View(ctx)
	for _, vip := range v.VIPs {
		fmt.Fprintf(stdout, "VIP %s on %s\n", vip.Address, strings.Join(vip.Holders, ", "))
	}
	for _, n := range v.Nodes {
		pn, _ := p.Node(n.Name)
		proc := "not running"
		if pr, ok := st.Procs[n.Name]; ok {
			proc = fmt.Sprintf("pid %d", pr.PID)
		}
		health := "healthy"
		switch {
		case !n.Reachable:
			health = "unreachable: " + n.Error
		case !n.Healthy:
			health = "degraded: " + strings.Join(n.Problems, "; ")
		}
		fmt.Fprintf(stdout, "  %-10s %-9s %-16s %-10s %s\n", n.Name, n.Role, pn.Addr, proc, health)
		for _, s := range n.Services {
			fmt.Fprintf(stdout, "             %s: %s (%s), %d restarts\n", s.Name, s.State, s.Health, s.Restarts)
		}
	}
	for _, f := range st.Faults {
		fmt.Fprintf(stdout, "fault: %s %s since %s\n", f.Node, f.How, f.At.Local().Format(time.TimeOnly))
	}
	return nil
}

func runLabExec(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	// Flags only before NODE; everything after "--" is the command.
	var cmdArgs []string
	for i, a := range args {
		if a == "--" {
			args, cmdArgs = args[:i], args[i+1:]
			break
		}
	}
	fs := labFlags(&g, "lab exec", "lab exec NODE|client -- COMMAND [ARG...]", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 2 && cmdArgs == nil {
		cmdArgs, pos = pos[1:], pos[:1]
	}
	if len(pos) != 1 || len(cmdArgs) == 0 {
		return &usageError{"lab exec: name a node (or client) and a command after --"}
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	cmd, err := l.Command(ctx, pos[0], cmdArgs[0], cmdArgs[1:]...)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	return cmd.Run()
}

func runLabFail(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	var how string
	fs := labFlags(&g, "lab fail", "lab fail NODE --how "+strings.Join(lab.Faults(), "|"), stderr)
	fs.StringVar(&how, "how", "", "the fault: "+strings.Join(lab.Faults(), ", "))
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !slices.Contains(lab.Faults(), how) {
		return &usageError{"lab fail: name one node and --how (" + strings.Join(lab.Faults(), ", ") + ")"}
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Fail(pos[0], how); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s\n", pos[0], how)
	return nil
}

func runLabHeal(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	fs := labFlags(&g, "lab heal", "lab heal [NODE]", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return &usageError{"lab heal: name at most one node"}
	}
	node := ""
	if len(pos) == 1 {
		node = pos[0]
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	n := len(l.State.Faults)
	if err := l.Heal(node); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "healed %d faults\n", n-len(l.State.Faults))
	return nil
}

func runLabDrain(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	var undo bool
	fs := labFlags(&g, "lab drain", "lab drain NODE [--undo]", stderr)
	fs.BoolVar(&undo, "undo", false, "send requests to the node again")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{"lab drain: name one web node"}
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	return l.Drain(pos[0], !undo)
}

func runLabLoad(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	var (
		rate              float64
		duration, timeout time.Duration
		path, out         string
	)
	fs := labFlags(&g, "lab load", "lab load [--rate R] [--duration D] [--out FILE.csv]", stderr)
	fs.Float64Var(&rate, "rate", 200, fmt.Sprintf("requests per second (at most %d)", lab.MaxLoadRate))
	fs.DurationVar(&duration, "duration", 10*time.Second, fmt.Sprintf("how long to send (at most %v)", lab.MaxLoadDuration))
	fs.DurationVar(&timeout, "timeout", 2*time.Second, "timeout of each request")
	fs.StringVar(&path, "path", "/whoami", "URL path requested at the VIP")
	fs.StringVar(&out, "out", "", "write every request (start, latency, status, error, backend) to this CSV file")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{"lab load: takes no arguments"}
	}
	if !strings.HasPrefix(path, "/") {
		return &usageError{"lab load: --path must start with /"}
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	url := "http://" + l.State.Plan.VIP().String() + path
	fmt.Fprintf(stdout, "GET %s at %.0f/s for %v from the client namespace\n", url, rate, duration)
	run, err := lab.RunLoad(ctx, lab.LoadConfig{URL: url, Rate: rate, Duration: duration, Timeout: timeout, Transport: l.LoadTransport()})
	if err != nil {
		return err
	}
	r := lab.Analyze(run, duration)
	fmt.Fprintf(stdout, "sent %d, failed %d (%.2f%%), longest gap %v, p50 %v, p99 %v\n",
		r.Sent, r.Failed, r.FailedPct(), r.LongestGap.Round(time.Millisecond), r.Before.P50.Round(time.Microsecond), r.Before.P99.Round(time.Microsecond))
	for k, v := range r.Errors {
		fmt.Fprintf(stdout, "  %s: %d\n", k, v)
	}
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if err := errors.Join(run.WriteCSV(f), f.Close()); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", out)
	}
	return nil
}

func runLabReport(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	var (
		htmlOut, initBin, src, only string
		rate                        float64
		before, after               time.Duration
	)
	fs := labFlags(&g, "lab report", "lab report [CLUSTER] [--html FILE]", stderr)
	fs.StringVar(&htmlOut, "html", "out/lab-report.html", "write the HTML report (with latency plots) here")
	fs.Float64Var(&rate, "rate", 200, "requests per second during each scenario")
	fs.DurationVar(&before, "before", 3*time.Second, "load before each fault")
	fs.DurationVar(&after, "after", 6*time.Second, "load after each fault")
	fs.StringVar(&only, "only", "", "comma-separated scenarios to run: "+strings.Join(lab.ScenarioKeys(), ","))
	fs.StringVar(&initBin, "init", "", "init binary, when the report brings a lab up (default: built from the source tree)")
	fs.StringVar(&src, "src", "", "piimage source tree (default: found from the current folder)")
	var otaImages, keys string
	var noOTA bool
	fs.StringVar(&otaImages, "ota-images", "", "comma-separated signed images, one per role, for the rolling update of a running lab brought up with --images")
	fs.StringVar(&keys, "keys", "", "the keys folder the images were built with (default: .keys in the source tree)")
	fs.BoolVar(&noOTA, "no-ota", false, "when the report brings a lab up: do not build images nor measure the rolling update")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return &usageError{"lab report: name at most one cluster folder"}
	}
	if err := lab.Available(); err != nil {
		return err
	}
	o := LabReportOptions{
		Name: g.name, RunDir: g.runDir, Cluster: strings.Join(pos, ""), Init: initBin, Src: src,
		Config: lab.ReportConfig{Rate: rate, Before: before, After: after, Only: splitList(only), Log: stderr, OTAUnavailable: LabOTAUnavailable},
		NoOTA:  noOTA,
	}
	if otaImages != "" {
		if o.Config.OTA, err = labCards(splitList(otaImages), keys, src); err != nil {
			return err
		}
	}
	rep, err := LabReport(ctx, o)
	if rep != nil {
		rep.WriteText(stdout)
		if htmlOut != "" {
			if werr := writeReportHTML(rep, htmlOut); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintf(stdout, "\nwrote %s\n", htmlOut)
			}
		}
	}
	return err
}

// LabOTAUnavailable is why a running lab's report has no rolling update
// row without --ota-images.
const LabOTAUnavailable = "not measured: the running lab was not brought up with images (lab up --images), or no newer images were given (lab report --ota-images)"

// LabReportOptions says how LabReport finds or makes its lab.
type LabReportOptions struct {
	Name, RunDir string
	// Cluster, Init and Src are used when no lab is up (see lab up).
	Cluster, Init, Src string
	Config             lab.ReportConfig
	// Log receives progress of bringing a lab up; nil means Config.Log.
	Log io.Writer
	// Cards are the images a lab brought up for the report boots; nil
	// means: build v1 and v2 images of every role from the source tree
	// (the nodes boot v1, the rolling update installs v2), unless NoOTA.
	Cards *lab.Cards
	NoOTA bool
}

// LabReport runs the failover report on the running lab, or on a lab it
// brings up for the purpose and takes down afterwards.
func LabReport(ctx context.Context, o LabReportOptions) (*lab.Report, error) {
	g := labGlobal{name: o.Name, runDir: o.RunDir}
	log := o.Log
	if log == nil {
		log = o.Config.Log
	}
	if log == nil {
		log = io.Discard
	}
	l, err := lab.Open(g.runDir, g.name)
	temporary := false
	if errors.Is(err, lab.ErrNoLab) {
		var pos []string
		if o.Cluster != "" {
			pos = []string{o.Cluster}
		}
		cards := o.Cards
		if cards == nil && !o.NoOTA {
			var why, dir string
			cards, o.Config.OTA, dir, why = labReportImages(ctx, o, log)
			if dir != "" {
				defer os.RemoveAll(dir)
			}
			if why != "" {
				o.Config.OTAUnavailable = why
			}
		}
		if l, err = labUp(ctx, g, pos, o.Init, o.Src, cards, log); err != nil {
			return nil, err
		}
		temporary = true
	} else if err != nil {
		return nil, err
	}
	rep, err := l.Report(ctx, o.Config)
	l.Close()
	if temporary {
		if derr := lab.Down(g.runDir, g.name, log); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return rep, err
}

func writeReportHTML(rep *lab.Report, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := errors.Join(rep.WriteHTML(f), f.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func runLabDashboard(ctx context.Context, g labGlobal, args []string, stdout, stderr io.Writer) error {
	var listen string
	fs := labFlags(&g, "lab dashboard", "lab dashboard [--listen 127.0.0.1:8377]", stderr)
	fs.StringVar(&listen, "listen", "127.0.0.1:8377", "loopback address to serve the dashboard on")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{"lab dashboard: takes no arguments"}
	}
	l, err := openLab(g)
	if err != nil {
		return err
	}
	defer l.Close()
	ln, err := lab.ListenDashboard(ctx, listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dashboard on http://%s/ (each node's admin API under /node/NAME/, e.g. /node/lbmaster/dashboard); Ctrl-C stops\n", ln.Addr())
	return l.ServeDashboard(ctx, ln)
}

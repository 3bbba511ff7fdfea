package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/supervise"
)

// processFlags are process mode's command line.
type processFlags struct {
	state     string
	overlay   string
	release   string
	adminAddr string
	card      string
	noNetwork bool
}

func parseProcessFlags(args []string, stderr io.Writer) (processFlags, error) {
	var f processFlags
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: init --state DIR --overlay FILE [--card DIR | --release FILE] [--admin-addr IP:PORT] [--no-network]")
		fmt.Fprintln(stderr, "       init service NAME --overlay FILE --sock PATH")
		fmt.Fprintln(stderr, "Process mode runs a node as an ordinary process; run it inside `ip netns exec NAME`.")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.state, "state", "", "state folder: last-good.yaml, run/, logs/, etc/ (required)")
	fs.StringVar(&f.overlay, "overlay", "", "the node's overlay file (required)")
	fs.StringVar(&f.release, "release", "", "release.json to report on /status")
	fs.StringVar(&f.card, "card", "", "card folder (boot/, root-a, root-b, ota.pub, admin/): run the slot it boots, take signed updates, trial, commit and roll back as on a Pi")
	fs.StringVar(&f.adminAddr, "admin-addr", "", "admin API listen address instead of 127.0.0.1 and eth0 at the overlay's port")
	fs.BoolVar(&f.noNetwork, "no-network", false, "touch no interface; serve the admin API on 127.0.0.1 only (allowed in the initial network namespace)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.state == "" || f.overlay == "" {
		return f, errors.New("--state and --overlay are required")
	}
	if f.card != "" && f.release != "" {
		return f, errors.New("--card and --release exclude each other: a card's release is its running slot's release.json")
	}
	return f, nil
}

// errInitialNetns explains the refusal to run in the initial namespace.
const errInitialNetns = "refusing to run: this process is in the machine's initial network namespace, " +
	"where it would configure this machine's interfaces and bind the overlay's addresses. " +
	"Run it inside a network namespace (`ip netns exec NAME init --state DIR --overlay FILE`), " +
	"or pass --no-network for a loopback-only admin API and no interface changes"

// processMain runs process mode and returns the exit code.
func processMain(ctx context.Context, args []string, stdout, stderr io.Writer, registry Registry) int {
	f, err := parseProcessFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "init: %v\n", err)
		return 2
	}
	network := !f.noNetwork
	if network {
		initial, err := inInitialNamespace("net")
		if err != nil {
			fmt.Fprintf(stderr, "init: cannot tell which network namespace this is (%v); %s\n", err, errInitialNetns)
			return 2
		}
		if initial {
			fmt.Fprintf(stderr, "init: %s\n", errInitialNetns)
			return 2
		}
	}
	pr, err := newProcessRuntime(f, network, stdout, stderr, registry)
	if err != nil {
		fmt.Fprintf(stderr, "init: %v\n", err)
		return 1
	}
	rt := pr.inst
	act := actionReboot // a rollback at start restarts at once
	if !pr.restartNow {
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		act, err = rt.run(ctx, nil)
		stop()
		if err != nil {
			rt.con.say("%v", err)
			pr.cleanup()
			return 1
		}
	}
	if act == actionReboot && pr.card != nil {
		if err := pr.card.restart(rt.ota); err != nil {
			rt.con.say("reboot: %v", err)
		}
		rt.con.say("reboot: restarting this process (process mode plays the firmware with --card)")
		pr.cleanup()
		err := restartSelf() // ota_process_linux.go; returns only on failure
		fmt.Fprintf(stderr, "init: reboot: %v\n", err)
		return 1
	}
	defer pr.cleanup()
	if act != actionExit {
		rt.con.say("%s requested: process mode exits instead", act)
	}
	rt.con.say("%s stopped", rt.loaded.node.Hostname)
	return 0
}

// processRuntime is a prepared process-mode node.
type processRuntime struct {
	inst    *instance
	cleanup func()
	// card is the --card folder; nil without one.
	card *processCard
	// restartNow: the card's trial was rolled back at start; restart
	// before running anything, as a Pi reboots at once.
	restartNow bool
}

// newProcessRuntime prepares the state folder, the logs, the overlay and
// the card folder.
func newProcessRuntime(f processFlags, network bool, stdout, stderr io.Writer, registry Registry) (*processRuntime, error) {
	state, err := filepath.Abs(f.state)
	if err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	for _, d := range []string{"run", "logs", "etc"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating the state folder: %w", err)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(state, "logs", "init.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the log: %w", err)
	}
	ring := supervise.NewRing(supervise.DefaultLogLines, nil)
	log := slog.New(slog.NewTextHandler(io.MultiWriter(stderr, ring, logFile), nil))
	con := console{out: io.MultiWriter(stdout, logFile), ring: ring}
	cleanups := []func(){func() { logFile.Close() }}
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	fail := func(err error) (*processRuntime, error) {
		cleanup()
		return nil, err
	}

	overlay, err := filepath.Abs(f.overlay)
	if err != nil {
		return fail(fmt.Errorf("overlay path: %w", err))
	}
	l, err := loadOverlay(overlay, admin.SourceFile, filepath.Join(state, "last-good.yaml"))
	if err != nil {
		return fail(err)
	}
	reportOverlay(con, l)
	var rel admin.Release
	var card *processCard
	switch {
	case f.release != "":
		if rel, err = readRelease(f.release); err != nil {
			return fail(err)
		}
	case f.card != "":
		dir, err := filepath.Abs(f.card)
		if err != nil {
			return fail(fmt.Errorf("card folder: %w", err))
		}
		if card, err = openCard(dir); err != nil {
			return fail(err)
		}
		rel = card.release
		con.say("card %s: starting slot %s (%s)", dir, card.slot, rel.Version)
	}
	addrs, err := processAdminAddrs(f.adminAddr, l, network)
	if err != nil {
		return fail(err)
	}
	restore, err := supervise.SetSubreaper()
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, restore)

	n := l.node
	switch sameUTS, err := inInitialNamespace("uts"); {
	case err == nil && !sameUTS && network:
		if err := setHostname(n.Hostname); err != nil {
			return fail(err)
		}
	default:
		log.Info("hostname not set: the UTS namespace is the machine's (or unknown); /status reports the overlay's", "hostname", n.Hostname)
	}
	if err := writeEtc(filepath.Join(state, "etc"), n); err != nil {
		return fail(err)
	}
	inst := &instance{
		con:        con,
		log:        log,
		initLog:    ring,
		registry:   registry,
		loaded:     l,
		release:    rel,
		runDir:     filepath.Join(state, "run"),
		exe:        "/proc/self/exe",
		network:    network,
		adminAddrs: addrs,
	}
	pr := &processRuntime{inst: inst, cleanup: cleanup, card: card}
	if card != nil {
		inst.slot = card.slot
		o, reboot, err := card.otaNode(con, inst)
		if err != nil {
			con.say("%v", err)
		}
		inst.ota, pr.restartNow = o, reboot
	}
	return pr, nil
}

// processAdminAddrs returns the admin listen addresses of process mode.
func processAdminAddrs(flagAddr string, l loaded, network bool) ([]string, error) {
	if flagAddr == "" {
		return admin.ListenAddrs(l.node, network), nil
	}
	if err := admin.CheckAddr(flagAddr, l.node); err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(flagAddr)
	if ip, _ := netip.ParseAddr(host); !network && !ip.IsLoopback() {
		return nil, fmt.Errorf("--admin-addr %s: with --no-network the admin API listens on a loopback address only", flagAddr)
	}
	return []string{flagAddr}, nil
}

// reportOverlay tells the console where the overlay came from and why.
func reportOverlay(con console, l loaded) {
	if l.info.FallbackReason != "" {
		con.say("the overlay is not usable:")
		for _, line := range strings.Split(l.info.FallbackReason, "\n") {
			con.say("  %s", line)
		}
		con.say("running on the last good overlay %s", l.info.Path)
	}
	if l.lastGood != "" {
		con.say("overlay %s", l.lastGood)
	}
}

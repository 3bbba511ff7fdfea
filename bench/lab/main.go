// Command lab measures what failures and planned operations cost the
// reference cluster's clients: it brings overlays/ up as a lab (network
// namespaces on this machine, the real init in each; see piimage lab),
// runs the report's scenarios under HTTP load at the VIP, prints the table
// with the targets, writes the HTML report with latency plots, and takes
// the lab down.
//
//	go run ./bench/lab [-rate 200] [-only lb-link,web-kill] [-html out/lab-report.html]
//
// It needs root and iproute2; it never fails a build.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/piimage/piimage/cmd/piimage/cli"
	"github.com/piimage/piimage/cmd/piimage/lab"
)

func main() {
	rate := flag.Float64("rate", 200, "requests per second during each scenario")
	only := flag.String("only", "", "comma-separated scenarios: "+strings.Join(lab.ScenarioKeys(), ","))
	html := flag.String("html", "out/lab-report.html", "HTML report")
	name := flag.String("name", "piimage-bench", "lab name (prefix of its namespaces)")
	flag.Parse()
	if err := lab.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/lab:", err)
		os.Exit(0) // a benchmark that cannot run here does not fail the build
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var keys []string
	for _, k := range strings.Split(*only, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	start := time.Now()
	args := []string{"lab", "report", "--name", *name, "--run-dir", lab.DefaultRunDir, "--rate", fmt.Sprint(*rate), "--html", *html}
	if len(keys) > 0 {
		args = append(args, "--only", strings.Join(keys, ","))
	}
	if err := cli.Run(ctx, args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/lab:", err)
		// Whatever happened, leave nothing behind.
		lab.Down(lab.DefaultRunDir, *name, os.Stderr)
	}
	fmt.Printf("bench/lab: %.0fs\n", time.Since(start).Seconds())
}

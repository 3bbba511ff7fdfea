// Command piimage builds, checks and inspects Raspberry Pi SD-card images
// whose Go init runs a node of a small highly available web cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/piimage/piimage/cmd/piimage/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // the command printed its flags
		}
		fmt.Fprintln(os.Stderr, "piimage:", err)
		os.Exit(cli.ExitCode(err))
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/piimage/piimage/overlays"
)

func validateCommand() command {
	return command{
		name:  "validate",
		short: "check overlay files (and, given several, the cluster they form) without building",
		run:   runValidate,
	}
}

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", "validate FILE...", stderr)
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return &usageError{"validate: name at least one overlay file"}
	}
	var nodes []*overlays.Node
	var errs []error
	for _, f := range files {
		n, err := overlays.Load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nodes = append(nodes, n)
	}
	if len(errs) == 0 && len(nodes) > 1 {
		if err := overlays.ValidateCluster(nodes); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return errors.New("validation failed")
	}
	for _, n := range nodes {
		fmt.Fprintf(stdout, "%s: ok (%s, role %s, %s)\n", n.File, n.Hostname, n.Role, n.Interfaces.Eth0.Address)
	}
	return nil
}

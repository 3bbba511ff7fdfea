package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/piimage/piimage/cmd/piimage/rollout"
	"github.com/piimage/piimage/image/flash"
	"github.com/piimage/piimage/image/ota/otaimage"
)

func updateCommand() command {
	return command{
		name:  "update",
		short: "push a signed image to one node and wait until it commits or rolls back (--node ADDR IMAGE)",
		run:   runUpdate,
	}
}

// pushFlags are the flags of the commands that push images to nodes.
type pushFlags struct {
	keys    string
	src     string
	full    bool
	timeout time.Duration
}

// register binds the flags; timeoutHelp says what the timeout bounds.
func (f *pushFlags) register(fset *flag.FlagSet, timeoutHelp string) {
	fset.StringVar(&f.keys, "keys", "", "the cluster's keys folder, for the admin token and certificate (default: .keys in the source tree)")
	fset.StringVar(&f.src, "src", "", "piimage source tree (default: found from the current folder)")
	fset.BoolVar(&f.full, "full", false, "send every byte, even those a node already has")
	fset.DurationVar(&f.timeout, "timeout", 10*time.Minute, timeoutHelp)
}

type updateFlags struct {
	pushFlags
	node string
}

func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f updateFlags
	fset := newFlagSet("update", "update --node ADDR[:PORT] [flags] IMAGE", stderr)
	fset.StringVar(&f.node, "node", "", "the node's admin address, IP[:PORT] (port 9000 by default); never the VIP")
	f.register(fset, "give up waiting for the outcome after this long")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || f.node == "" {
		return &usageError{"update: give --node ADDR and one image file"}
	}
	dir, err := keysDir(f.keys, f.src)
	if err != nil {
		return err
	}
	c, err := newAdminClient(f.node, dir)
	if err != nil {
		return err
	}
	file, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer file.Close()
	img, err := otaimage.Open(file)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	out, err := rollout.Push(ctx, c, img, rollout.PushOptions{Full: f.full, Out: stdout, Progress: progressWriter(stderr)})
	if err != nil {
		return err
	}
	return out.Err()
}

func progressWriter(w io.Writer) *flash.ProgressPrinter {
	pp := &flash.ProgressPrinter{W: w, Every: 2 * time.Second}
	if f, ok := w.(*os.File); ok {
		pp.Terminal = flash.IsTerminal(f)
	}
	return pp
}

// newAdminClient returns a client for node (IP or IP:PORT) that pins the
// cluster certificate of keysDir and sends its token.
func newAdminClient(node, keysDir string) (*rollout.Client, error) {
	cred, err := loadCredential(keysDir)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's admin credential: %w (the keys folder the images were built with, --keys)", err)
	}
	return rollout.NewClient(node, cred, nil)
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/piimage/piimage/cmd/piimage/rollout"
	"github.com/piimage/piimage/overlays"
)

// Rollout updates the lab's nodes with the signed images c.Images, one
// node at a time as `piimage rollout` does (the master hands the VIP over,
// web nodes are drained), talking to the nodes' admin APIs from the client
// namespace. The nodes must run cards (Config.Cards).
func (l *Lab) Rollout(ctx context.Context, c *Cards, out io.Writer) (rollout.Summary, error) {
	p := l.State.Plan
	var nodes []*overlays.Node
	for _, pn := range p.Nodes {
		if pn.Card == "" {
			return rollout.Summary{}, fmt.Errorf("%s runs without a card folder: bring the lab up with images (lab up --images)", pn.Host)
		}
		n, err := overlays.Load(pn.Overlay)
		if err != nil {
			return rollout.Summary{}, err
		}
		nodes = append(nodes, n)
	}
	if c == nil || c.Admin == nil {
		return rollout.Summary{}, errors.New("rollout: no images or no admin credential")
	}
	var imgs []*rollout.Image
	for _, path := range c.Images {
		img, err := rollout.OpenImage(path)
		if err != nil {
			return rollout.Summary{}, err
		}
		defer img.File.Close()
		imgs = append(imgs, img)
	}
	plan, err := rollout.Plan(nodes, imgs)
	if err != nil {
		return rollout.Summary{}, err
	}
	return rollout.Run(ctx, plan, rollout.Options{
		Cluster: nodes,
		Client: func(n *overlays.Node) (*rollout.Client, error) {
			return rollout.NewClient(rollout.AdminAddr(n), c.Admin, l.client.DialContext)
		},
		Push:    rollout.PushOptions{Out: out, Poll: 500 * time.Millisecond},
		Timeout: 5 * time.Minute,
		Out:     out,
	})
}

// prefixWriter writes each line with a prefix; writes must be whole lines
// (as fmt.Fprintf of a line is).
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if _, err := io.WriteString(p.w, p.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// nodeEnv, when set, makes the test binary run one mirror node (for the
// network-namespace tests) instead of the tests.
const nodeEnv = "PIIMAGE_MIRROR_TEST_NODE"

// childNode is the configuration a test hands to a node process.
type childNode struct {
	Name, Root, Primary, Listen string
	Heartbeat, MaxBackoff       time.Duration
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		os.Exit(runChildNode(spec))
	}
	os.Exit(m.Run())
}

func runChildNode(spec string) int {
	var c childNode
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	id, err := IdentityFromSecret(testSecret, c.Name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", c.Name)
	svc, err := NewService(Config{Name: c.Name, Root: c.Root, Primary: c.Primary, PrimaryName: "web01", Listen: c.Listen,
		Identity: id, Heartbeat: c.Heartbeat, MaxBackoff: c.MaxBackoff, BatchDelay: 10 * time.Millisecond}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := svc.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

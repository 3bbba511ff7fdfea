// Command init is a piimage node's init: PID 1 on the Raspberry Pi, an
// ordinary process in a network namespace for tests and labs, and each
// supervised service re-executed. See package node.
package main

import (
	"context"
	"os"

	"github.com/piimage/piimage/services/node"
)

func main() {
	os.Exit(node.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, registry()))
}

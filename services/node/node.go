// Package node is the init of a piimage node. One binary runs in three
// modes:
//
//   - PID 1 on a Raspberry Pi (pid 1; arguments are ignored): mounts, finds the boot
//     disk, reads the overlay, configures the network, serves the admin
//     API, supervises the role's services, feeds the watchdog, reaps
//     orphans, and reboots or powers off cleanly.
//   - Process mode (init --state DIR --overlay FILE): the same node as an
//     ordinary process, with a state folder instead of partitions, for
//     tests and labs. It touches network interfaces only inside a network
//     namespace other than the machine's initial one.
//   - Service mode (init service NAME --overlay FILE --sock PATH): one
//     service, re-executed by the supervisor in its own process group.
package node

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
)

// Registry maps a service name to its factory. cmd/init builds it; a
// service package adds itself there, e.g. "web": web.New.
type Registry map[string]services.Factory

// Main runs the init in the mode its pid and arguments select and returns
// the process's exit code. As PID 1 it never returns.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, registry Registry) int {
	if os.Getpid() == 1 {
		// Arguments are kernel command line words the kernel did not
		// know; PID 1 must never exit over them (that panics the kernel).
		if len(args) > 0 {
			fmt.Fprintf(stdout, "piimage: ignoring arguments %q\n", args)
		}
		pid1Main(ctx, stdout, registry)
		return 1 // not reached
	}
	if len(args) > 0 && args[0] == "service" {
		return serviceMain(ctx, args[1:], stderr, registry)
	}
	return processMain(ctx, args, stdout, stderr, registry)
}

// RoleServices returns the services a node of role runs, in start order.
func RoleServices(role string) []string {
	switch role {
	case overlays.RoleLBMaster, overlays.RoleLBBackup:
		return []string{"balancer", "vip"}
	case overlays.RoleWeb:
		return []string{"web", "mirror"}
	}
	return nil
}

// console writes the init's messages for a person, one "piimage: " line
// each, to the console and to the init's log ring.
type console struct {
	out  io.Writer
	ring io.Writer
}

func (c console) say(format string, args ...any) {
	line := "piimage: " + fmt.Sprintf(format, args...) + "\n"
	io.WriteString(c.out, line)
	if c.ring != nil {
		io.WriteString(c.ring, line)
	}
}

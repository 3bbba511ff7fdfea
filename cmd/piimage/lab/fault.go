package lab

import (
	"fmt"
	"strings"
)

// Faults Fail injects.
const (
	// HowLinkDown pulls the node's cable: its carrier goes down.
	HowLinkDown = "link-down"
	// HowKill cuts the node's power: every process dies at once and its
	// network goes silent until Heal boots it again.
	HowKill = "kill"
	// HowCrash kills every process of the node at once while its kernel
	// stays up: connections to it are refused or reset at once, as after
	// a crash of the init and its services.
	HowCrash = "crash"
	// HowFreeze stops every process of the node (SIGSTOP) while its
	// kernel still answers: a hung node.
	HowFreeze = "freeze"
	// HowReboot shuts the node down cleanly and boots it again.
	HowReboot = "reboot"
	// HowPartition cuts the node off the bridge with its link up: it
	// cannot tell that nobody hears it.
	HowPartition = "partition"
)

// Faults lists what Fail can do.
func Faults() []string {
	return []string{HowLinkDown, HowKill, HowCrash, HowFreeze, HowReboot, HowPartition}
}

func checkHow(how string) error {
	for _, h := range Faults() {
		if h == how {
			return nil
		}
	}
	return fmt.Errorf("unknown fault %q (one of %s)", how, strings.Join(Faults(), ", "))
}

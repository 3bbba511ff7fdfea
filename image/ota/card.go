package ota

// A card folder is a node's SD card as plain files, for nodes that run as
// ordinary processes (the init's --card flag, piimage lab): the same
// update, trial, commit and rollback code runs on it as on a Pi.
//
//	boot/          the boot partition's files: config.txt, tryboot.txt,
//	               slot-a/, slot-b/ (each with release.json and
//	               cmdline.txt), the trial state
//	root-a, root-b the root partitions, as files of the partitions' size
//	ota.pub        the keys an update must be signed with (the image
//	               root's /piimage/ota.pub)
//	admin/         the cluster's admin credential (/data/admin on a card)
//	tryboot        present while the next start is a tryboot one (Pi 4)
const (
	CardBoot    = "boot"
	CardKeys    = "ota.pub"
	CardAdmin   = "admin"
	CardTryboot = "tryboot"
)

// CardRoot is the name of slot's root partition file in a card folder.
func CardRoot(slot string) string { return "root-" + slot }

package boards

// The Pi 2 model B v1.1 has a BCM2836 (Cortex-A7, ARMv7): the Raspberry Pi
// documentation says 64-bit kernels run only on the Pi 4, Pi 3 and Pi 2
// model B v1.2 (BCM2837), so this board runs a 32-bit kernel. No Go module
// carries one; Debian's armhf "armmp" (ARMv7 multiplatform) kernel does,
// with the upstream device tree bcm2836-rpi-2-b.dtb. Almost every driver
// in that kernel is a module, so the board boots an initramfs in which the
// init loads the modules below, then switches to the squashfs root.

// DebianArmmp is Debian bookworm's armhf kernel, pinned by the values of
// `apt-cache show linux-image-6.1.0-50-armmp:armhf`. Debian removes a
// superseded kernel from its mirrors after a point release: a build that
// finds the mirror without it says so; update the pin (name, release,
// version, file name, size and SHA-256) from apt-cache show.
var DebianArmmp = DebianKernel{
	Package: DebianPackage{
		Name:     "linux-image-6.1.0-50-armmp",
		Version:  "6.1.176-1",
		Arch:     "armhf",
		Filename: "pool/main/l/linux/linux-image-6.1.0-50-armmp_6.1.176-1_armhf.deb",
		Size:     43302144,
		SHA256:   "ddd1d8dd0c6beabb9eb96bcfab26549eb30c63331bae31de481ffae4af0e982a",
	},
	Release: "6.1.0-50-armmp",
	Modules: pi2Modules,
}

// pi2Modules are what the Pi 2's init needs before it can mount its root
// and configure eth0, by name; the builder adds their dependencies. In
// that kernel mmc_block, the Broadcom clocks, pin control, DMA, mailbox,
// firmware and power domains, the PL011 UART and the bcm2835 USB PHY glue
// are built in.
var pi2Modules = []string{
	// SD card: the Arasan SDHCI ("brcm,bcm2835-sdhci") and the SDHOST
	// controller ("brcm,bcm2835-sdhost"); QEMU's raspi2b wires its card
	// to the first.
	"sdhci_iproc",
	"bcm2835",
	// Root and partitions: squashfs (zlib), the FAT boot partition with
	// its default code page and character set (437, ascii), the ext4
	// data partition and the crc32c it checksums with.
	"squashfs",
	"vfat",
	"nls_cp437",
	"nls_ascii",
	"crc32c_generic",
	"ext4",
	// USB and Ethernet: the DWC2 host controller and its PHY, the Pi 2's
	// LAN9514 (smsc95xx), and CDC Ethernet (QEMU's usb-net).
	"phy_generic",
	"dwc2",
	"smsc95xx",
	"cdc_ether",
	// The node's nftables firewall (services/firewall): nf_tables with
	// nfnetlink, and the expressions that are modules in this kernel:
	// ct (state, notrack; brings nf_conntrack), limit and objref (named
	// counters). The kernel cannot load them on demand: there is no
	// modprobe.
	"nf_tables",
	"nft_ct",
	"nft_limit",
	"nft_objref",
	// Hardware random numbers, and the watchdog, whose driver also
	// reboots and powers off the board.
	"bcm2835_rng",
	"bcm2835_wdt",
}

// Package rootfs assembles what goes into a node's image: the cross-compiled
// init and its root tree, the boot partition's firmware, slot folder and
// overlay, and the data partition's first contents. It turns an overlay and a
// board into an image.Plan; package image writes it.
package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/boards"
	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/overlays"
)

// Options says what to build.
type Options struct {
	// SrcDir is the piimage source tree (holds go.mod and cmd/init).
	SrcDir string
	// Node is the validated overlay; OverlayBytes is its file as the user
	// wrote it, copied to the card unchanged (comments included).
	Node         *overlays.Node
	OverlayBytes []byte
	Board        boards.Board
	// Version names the build; ModTime stamps every file.
	Version string
	ModTime time.Time
	// SiteDir, when set on a web node, is copied into the data partition's
	// web root.
	SiteDir string
	// WorkDir holds intermediate files (the compiled init); a temporary
	// folder when empty. Builds of several nodes from the same source share
	// it, so each board's init is compiled once.
	WorkDir string
	Log     *slog.Logger
	// OTAPublicKey, when set, is baked into the root as OTAPublicKeyPath:
	// the keys (PEM) an update must be signed with.
	OTAPublicKey []byte
	// AdminFiles, when set, go to the data partition's AdminDir: the
	// node's copy of the cluster's admin credential (admin.NodeFiles).
	AdminFiles map[string][]byte
	// MirrorSecret, when set, is the cluster's web-root mirroring secret,
	// written to web nodes' data partitions as MirrorSecretPath (0600).
	MirrorSecret []byte
}

// Release is the build metadata stored in the image (/piimage/release.json
// in the root and <slot>/release.json on the boot partition).
type Release struct {
	Version  string `json:"version"`
	Board    string `json:"board"`
	Built    string `json:"built"`
	Kernel   string `json:"kernel"`
	Firmware string `json:"firmware"`
	Hostname string `json:"hostname"`
	Role     string `json:"role"`
	InitSize int64  `json:"init_size"`
	// TryBoot says the board's firmware has tryboot.txt (Pi 4); updates
	// then trial-boot through it.
	TryBoot bool `json:"tryboot,omitempty"`
}

// InitPath is where the init sits in the root filesystem; cmdline.txt names it.
const InitPath = "/init"

// ReleasePath is the build metadata's path in the root filesystem.
const ReleasePath = "piimage/release.json"

// OTAPublicKeyPath is where the root keeps the update signing keys.
const OTAPublicKeyPath = "piimage/ota.pub"

// AdminDir is the data partition's folder of admin credential files
// (admin.CredentialsDir).
const AdminDir = "piimage/admin"

// LastGoodPath is where the data partition keeps the last overlay that
// validated; the init falls back to it when the FAT copy is broken.
const LastGoodPath = "piimage/last-good.yaml"

// MirrorSecretPath is the mirror's cluster secret on the data partition
// (overlays.DefaultMirrorSecretFile on the node).
const MirrorSecretPath = "mirror/secret"

// WebRoot is the web root's folder on the data partition.
const WebRoot = "www"

// Plan assembles the image plan for one node.
func Plan(ctx context.Context, o Options) (*image.Plan, *Release, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	work := o.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "piimage-build-")
		if err != nil {
			return nil, nil, fmt.Errorf("creating work folder: %w", err)
		}
		defer os.RemoveAll(d)
		work = d
	}
	kernel, err := o.Board.FetchKernel(ctx, o.SrcDir, o.Log)
	if err != nil {
		return nil, nil, err
	}
	firmwareDir, err := boards.Fetch(ctx, o.SrcDir, o.Board.Firmware)
	if err != nil {
		return nil, nil, err
	}
	initBin := filepath.Join(work, "init-"+o.Board.Name)
	if _, err := os.Stat(initBin); errors.Is(err, fs.ErrNotExist) {
		if err := CompileInit(ctx, o.SrcDir, o.Board, initBin); err != nil {
			return nil, nil, err
		}
	}
	initData, err := os.ReadFile(initBin)
	if err != nil {
		return nil, nil, err
	}
	rel := &Release{
		Version:  o.Version,
		Board:    o.Board.Name,
		Built:    o.ModTime.UTC().Format(time.RFC3339),
		Kernel:   kernel.Source,
		Firmware: o.Board.Firmware.String(),
		Hostname: o.Node.Hostname,
		Role:     o.Node.Role,
		InitSize: int64(len(initData)),
		// Of our boards only the Pi 4 firmware has tryboot.txt.
		TryBoot: o.Board.Name == "pi4",
	}
	relJSON, err := json.MarshalIndent(rel, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	relJSON = append(relJSON, '\n')

	diskID := DiskID(o.Node.Hostname)
	boot, err := bootTree(o, kernel, firmwareDir, diskID, relJSON, initData)
	if err != nil {
		return nil, nil, err
	}
	data, err := dataTree(o)
	if err != nil {
		return nil, nil, err
	}
	p := &image.Plan{
		Layout:       image.Layout{DiskID: diskID},
		Boot:         boot,
		Root:         rootTree(initData, relJSON, o.OTAPublicKey),
		Data:         data,
		ModTime:      o.ModTime,
		DataUUID:     derivedUUID("data uuid", o.Node.Hostname),
		DataHashSeed: derivedUUID("data hash seed", o.Node.Hostname),
		BootVolumeID: derivedID("boot volume", o.Node.Hostname),
	}
	if p.Root, err = withFsck(ctx, o, p.Root); err != nil { // fsck.go: /sbin/e2fsck for the data partition
		return nil, nil, err
	}
	if p.Root, err = withWiFi(ctx, o, p.Root); err != nil { // wifi.go: firmware, regdb and brcmfmac when wlan0 joins a network
		return nil, nil, err
	}
	return p, rel, nil
}

// rootTree is slot A's read-only root: the init, the mount points it needs
// and the build metadata. Nothing else: the services are the init binary
// re-executed.
func rootTree(initData, relJSON, otaPub []byte) fs.FS {
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	m := fstest.MapFS{
		".":         dir,
		"init":      {Data: initData, Mode: 0o755},
		ReleasePath: {Data: relJSON, Mode: 0o644},
		"boot":      dir, "data": dir, "dev": dir, "etc": dir,
		"proc": dir, "run": dir, "sys": dir, "tmp": {Mode: fs.ModeDir | 0o1777},
	}
	if otaPub != nil {
		m[OTAPublicKeyPath] = &fstest.MapFile{Data: otaPub, Mode: 0o644}
	}
	return m
}

// DiskID derives the MBR disk identifier from the hostname, so rebuilding a
// node gives the same PARTUUIDs and the same bytes.
func DiskID(hostname string) uint32 {
	id := derivedID("disk id", hostname)
	if id == 0 {
		id = 1
	}
	return id
}

func derivedID(purpose, hostname string) uint32 {
	h := fnv.New32a()
	fmt.Fprintf(h, "piimage %s %s", purpose, hostname)
	return h.Sum32()
}

// derivedUUID returns a name-based (version 5 style) UUID for hostname.
func derivedUUID(purpose, hostname string) [16]byte {
	sum := sha256.Sum256([]byte("piimage " + purpose + " " + hostname))
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

package mirror

import (
	"sync"
	"sync/atomic"
	"time"
)

// Status is the mirror's state for the status page.
type Status struct {
	// Role is "primary" or "replica".
	Role string
	// Name is this node's hostname and Root its web root.
	Name, Root string
	// Primary is the address a replica dials; "" on the primary.
	Primary string
	// Replicas lists the replicas connected to a primary, by name.
	Replicas []ReplicaStatus
	// Self is a replica's view of itself; nil on the primary.
	Self *ReplicaStatus
	// Gen is the primary's current generation of changes.
	Gen uint64
	// Counters since the service started.
	Counters Counters
	// LastError is the last error and when it happened; "" when none.
	LastError   string
	LastErrorAt time.Time
}

// ReplicaStatus is how far one replica is behind.
type ReplicaStatus struct {
	Name string
	// Addr is the replica's address as the primary sees it.
	Addr string
	// Connected reports whether the session is up.
	Connected bool
	// InSync reports whether the replica has applied every change the
	// primary has published.
	InSync bool
	// Lag is how long the oldest change not yet applied has been waiting,
	// and LagBytes the size of the files still to send (an upper bound of
	// what goes over the wire); both 0 when in sync.
	Lag      time.Duration
	LagBytes int64
	// AckedGen is the last generation the replica applied.
	AckedGen uint64
	// Since is when the session started; SyncedAt when it first caught up.
	Since, SyncedAt time.Time
	// Until is when a replica no longer connected was last seen; its Lag
	// then counts from that moment.
	Until time.Time
	// LastError is why a replica's last session ended ("" if it ended
	// cleanly or is still up).
	LastError string
	// WireIn and WireOut count the session's bytes, TLS included, as the
	// reporting side sees them.
	WireIn, WireOut int64
}

// Counters are running totals.
type Counters struct {
	// FilesSent and FilesReceived count file transfers.
	FilesSent, FilesReceived int64
	// LiteralBytes and MatchedBytes are the new bytes sent and the bytes
	// taken from the replica's own copy instead.
	LiteralBytes, MatchedBytes int64
	// Changes counts the entries published (primary) or applied (replica).
	Changes int64
	// Deleted counts paths removed on a replica.
	Deleted int64
	// Refused counts entries refused as unsafe: paths leaving the root,
	// absolute paths, writes through symbolic links, names of the
	// mirror's own files.
	Refused int64
	// Corrupt counts files whose checksum did not match (fetched again).
	Corrupt int64
	// AuthFailures counts TLS handshakes that failed.
	AuthFailures int64
	// Sessions counts replica sessions started.
	Sessions int64
	// WireIn and WireOut count bytes of all sessions, TLS included.
	WireIn, WireOut int64
	// Switches counts whole-tree switches (Config.AtomicTree).
	Switches int64
}

// counters are the live Counters plus the last error.
type counters struct {
	filesSent, filesReceived atomic.Int64
	literal, matched         atomic.Int64
	changes, deleted         atomic.Int64
	refused, corrupt         atomic.Int64
	authFailures, sessions   atomic.Int64
	wireIn, wireOut          atomic.Int64
	switches                 atomic.Int64

	mu      sync.Mutex
	lastErr string
	errAt   time.Time
}

func (c *counters) setErr(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.lastErr, c.errAt = err.Error(), time.Now()
	c.mu.Unlock()
}

func (c *counters) snapshot() (Counters, string, time.Time) {
	c.mu.Lock()
	e, at := c.lastErr, c.errAt
	c.mu.Unlock()
	return Counters{
		FilesSent: c.filesSent.Load(), FilesReceived: c.filesReceived.Load(),
		LiteralBytes: c.literal.Load(), MatchedBytes: c.matched.Load(),
		Changes: c.changes.Load(), Deleted: c.deleted.Load(),
		Refused: c.refused.Load(), Corrupt: c.corrupt.Load(),
		AuthFailures: c.authFailures.Load(), Sessions: c.sessions.Load(),
		WireIn: c.wireIn.Load(), WireOut: c.wireOut.Load(),
		Switches: c.switches.Load(),
	}, e, at
}

// status reports the primary's replicas: those connected, and those seen
// since the primary started that are not connected now.
func (p *primary) status(now time.Time) []ReplicaStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ReplicaStatus
	seen := map[string]bool{}
	for pc := range p.peers {
		out = append(out, p.replicaLocked(pc, now))
		seen[pc.name] = true
	}
	for name, r := range p.gone {
		if !seen[name] {
			r.Lag = now.Sub(r.Until)
			out = append(out, r)
		}
	}
	sortReplicas(out)
	return out
}

// replicaLocked reports one connected replica.
func (p *primary) replicaLocked(pc *peer, now time.Time) ReplicaStatus {
	r := ReplicaStatus{Name: pc.name, Addr: pc.addr, Connected: true, AckedGen: pc.acked,
		Since: pc.since, SyncedAt: pc.syncedAt, WireIn: pc.in.Load(), WireOut: pc.out.Load()}
	switch {
	case pc.acked < pc.snapGen:
		r.Lag, r.LagBytes = now.Sub(pc.since), pc.snapBytes
	case pc.acked < p.gen:
		for _, h := range p.hist {
			if h.gen > pc.acked {
				if r.Lag == 0 {
					r.Lag = now.Sub(h.at)
				}
				r.LagBytes += h.bytes
			}
		}
	default:
		r.InSync = true
	}
	return r
}

func sortReplicas(rs []ReplicaStatus) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Name < rs[j-1].Name; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

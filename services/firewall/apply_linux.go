package firewall

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Applier installs rulesets into one network namespace.
type Applier struct {
	// NetNS is an open network namespace (such as /run/netns/NAME) to
	// apply to; nil means the calling thread's.
	NetNS *os.File
	// AllowInitial permits the machine's initial network namespace. Only
	// PID 1 sets it: anywhere else (tests, process mode) touching the
	// host's firewall is refused.
	AllowInitial bool
}

// ErrInitialNamespace is returned when the target is the machine's initial
// network namespace and AllowInitial is not set.
var ErrInitialNamespace = errors.New("refusing to touch the firewall of the machine's initial network namespace")

// Apply replaces the table TableName with rs in one netlink batch, which
// the kernel applies atomically: the old rules stay until the new ones are
// all in place. A nil rs removes the table.
func (a *Applier) Apply(rs *Ruleset) error {
	conn, err := a.conn()
	if err != nil {
		return err
	}
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	// Adding first makes the delete succeed when there is no table yet.
	conn.AddTable(table)
	conn.DelTable(table)
	if rs != nil {
		conn.AddTable(table)
		if err := addRuleset(conn, table, rs); err != nil {
			return err
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("installing the nftables ruleset: %w", err)
	}
	return nil
}

// Counter is the value of one named counter.
type Counter struct {
	Name           string
	Packets, Bytes uint64
}

// Counters reads the named counters of the installed table.
func (a *Applier) Counters() ([]Counter, error) {
	conn, err := a.conn()
	if err != nil {
		return nil, err
	}
	objs, err := conn.GetNamedObjects(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	if err != nil {
		return nil, fmt.Errorf("reading the firewall counters: %w", err)
	}
	var out []Counter
	for _, o := range objs {
		no, ok := o.(*nftables.NamedObj)
		if !ok || no.Type != nftables.ObjTypeCounter {
			continue
		}
		if c, ok := no.Obj.(*expr.Counter); ok {
			out = append(out, Counter{Name: no.Name, Packets: c.Packets, Bytes: c.Bytes})
		}
	}
	return out, nil
}

// conn checks the target namespace and opens a connection to it.
func (a *Applier) conn() (*nftables.Conn, error) {
	initial, err := a.inInitialNamespace()
	if err != nil {
		return nil, fmt.Errorf("%w: cannot tell which namespace this is: %v", ErrInitialNamespace, err)
	}
	if initial && !a.AllowInitial {
		return nil, ErrInitialNamespace
	}
	var opts []nftables.ConnOption
	if a.NetNS != nil {
		opts = append(opts, nftables.WithNetNSFd(int(a.NetNS.Fd())))
	}
	return nftables.New(opts...)
}

// inInitialNamespace reports whether the target namespace is PID 1's or
// kthreadd's (PID 2, when it is a kernel thread).
func (a *Applier) inInitialNamespace() (bool, error) {
	var target unix.Stat_t
	if a.NetNS != nil {
		if err := unix.Fstat(int(a.NetNS.Fd()), &target); err != nil {
			return true, fmt.Errorf("stat of the namespace file: %w", err)
		}
	} else if err := unix.Stat("/proc/thread-self/ns/net", &target); err != nil {
		return true, err
	}
	compared := false
	for _, pid := range []int{1, 2} {
		if pid == 2 && !isKernelThread(pid) {
			continue
		}
		var ref unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &ref); err != nil {
			continue
		}
		compared = true
		if ref.Dev == target.Dev && ref.Ino == target.Ino {
			return true, nil
		}
	}
	if !compared {
		return true, errors.New("neither /proc/1/ns/net nor /proc/2/ns/net can be read")
	}
	return false, nil
}

// isKernelThread reports whether pid has PF_KTHREAD in /proc/PID/stat.
func isKernelThread(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	var flags uint64
	if len(f) < 7 {
		return false
	}
	if _, err := fmt.Sscan(f[6], &flags); err != nil {
		return false
	}
	return flags&0x00200000 != 0
}

// addRuleset queues rs's objects, sets, chains and rules on conn.
func addRuleset(conn *nftables.Conn, table *nftables.Table, rs *Ruleset) error {
	for _, c := range rs.Counters {
		conn.AddObj(&nftables.NamedObj{Table: table, Name: c, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}})
	}
	sets := map[string]*nftables.Set{}
	for _, s := range rs.Sets {
		set := &nftables.Set{
			Table: table, Name: s.Name, KeyType: nftables.TypeIPAddr,
			Dynamic: true, HasTimeout: true, Timeout: s.Timeout, Size: s.Size,
		}
		if err := conn.AddSet(set, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
		sets[s.Name] = set
	}
	for _, c := range rs.Chains {
		chain := conn.AddChain(&nftables.Chain{
			Name: c.Name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookRef(chainHook(c.Hook)),
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(c.Priority)),
			Policy:   chainPolicy(c.Policy),
		})
		for _, r := range c.Rules {
			exprs, err := ruleExprs(r, sets)
			if err != nil {
				return fmt.Errorf("chain %s, rule %q: %w", c.Name, r, err)
			}
			rule := &nftables.Rule{Table: table, Chain: chain, Exprs: exprs}
			if r.Comment != "" {
				rule.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
			}
			conn.AddRule(rule)
		}
	}
	return nil
}

func chainHook(h Hook) nftables.ChainHook {
	switch h {
	case HookPrerouting:
		return unix.NF_INET_PRE_ROUTING
	case HookOutput:
		return unix.NF_INET_LOCAL_OUT
	}
	return unix.NF_INET_LOCAL_IN
}

func chainPolicy(v Verdict) *nftables.ChainPolicy {
	p := nftables.ChainPolicyAccept
	if v == Drop {
		p = nftables.ChainPolicyDrop
	}
	return &p
}

// ruleExprs translates one rule into the expressions nft itself would
// generate for it (with the same implicit protocol dependencies, once
// each), so that `nft list` prints the rule as Rule.String does.
func ruleExprs(r Rule, sets map[string]*nftables.Set) ([]expr.Any, error) {
	var (
		out     []expr.Any
		haveIP4 bool
		haveL4  IPProto
	)
	ip4 := func() {
		if !haveIP4 {
			out = append(out, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}})
			haveIP4 = true
		}
	}
	l4 := func(p IPProto) {
		if haveL4 != p {
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(p)}})
			haveL4 = p
		}
	}
	load := func(base expr.PayloadBase, off, n uint32) {
		out = append(out, &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n})
	}
	eq := func(b []byte) { out = append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b}) }
	for _, m := range r.Match {
		switch m := m.(type) {
		case IIfName:
			name := make([]byte, unix.IFNAMSIZ)
			copy(name, m)
			out = append(out, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1})
			eq(name)
		case NFProto:
			out = append(out, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1})
			eq([]byte{byte(m)})
			haveIP4 = m == NFProtoIPv4
		case CtState:
			out = append(out,
				&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(uint32(m)), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
		case IPProto:
			ip4()
			load(expr.PayloadBaseNetworkHeader, 9, 1)
			eq([]byte{byte(m)})
		case SAddr:
			if !m.IsValid() || !m.Addr().Is4() {
				return nil, fmt.Errorf("source %v is not an IPv4 network", m.Prefix)
			}
			ip4()
			load(expr.PayloadBaseNetworkHeader, 12, 4)
			if m.Bits() < 32 {
				mask := net.CIDRMask(m.Bits(), 32)
				out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
			}
			a := m.Masked().Addr().As4()
			eq(a[:])
		case TCPDport, TCPSport:
			l4(ProtoTCP)
			off := uint32(2)
			port := uint16(0)
			if p, ok := m.(TCPDport); ok {
				port = uint16(p)
			} else {
				off, port = 0, uint16(m.(TCPSport))
			}
			load(expr.PayloadBaseTransportHeader, off, 2)
			eq(binaryutil.BigEndian.PutUint16(port))
		case TCPSyn:
			l4(ProtoTCP)
			load(expr.PayloadBaseTransportHeader, 13, 1)
			out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}})
			eq([]byte{0x02})
		case ICMPType:
			l4(ProtoICMP)
			load(expr.PayloadBaseTransportHeader, 0, 1)
			eq([]byte{byte(m)})
		case Limit:
			out = append(out, &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(m.Rate), Unit: expr.LimitTimeSecond, Burst: m.Burst})
		case Meter:
			set, ok := sets[m.Set]
			if !ok {
				return nil, fmt.Errorf("no set %q", m.Set)
			}
			ip4()
			load(expr.PayloadBaseNetworkHeader, 12, 4)
			out = append(out, &expr.Dynset{
				SrcRegKey: 1, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_UPDATE,
				Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(m.Rate), Over: true, Unit: expr.LimitTimeSecond, Burst: m.Burst}},
			})
		default:
			return nil, fmt.Errorf("unknown match %T", m)
		}
	}
	if r.Counter != "" {
		out = append(out, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: r.Counter})
	}
	switch r.Verdict {
	case Accept:
		out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
	case Drop:
		out = append(out, &expr.Verdict{Kind: expr.VerdictDrop})
	case NoTrack:
		out = append(out, &expr.Notrack{})
	}
	return out, nil
}

// Package netnstest builds throw-away network namespaces for tests: a
// namespace of its own, veth pairs between namespaces, and a "lab" of
// hosts whose eth0s hang on one bridge. Everything it makes is deleted
// when the test ends, and nothing is added to the machine's own network
// namespace unless a test asks for a veth end there by name.
//
// It is Linux-only and meant for _linux_test.go files. Every constructor
// skips the test when it does not run as root or ip(8) (iproute2) is
// missing, or when the kernel refuses a namespace; any later ip(8)
// failure fails the test.
//
// The API:
//
//	Require(t)                   // skip unless root with ip(8)
//
//	n := New(t, "fw")            // namespace piimg-fw-<6 hex>, lo up
//	n := NewBare(t, "nc")        // the same with lo down and unaddressed
//	n.Name, n.Path()             // its name and /run/netns/NAME
//	n.IP("addr", "show")         // ip -n NAME addr show; t.Fatal on error
//	n.Command("nft", "list", "ruleset")  // *exec.Cmd run by ip netns exec
//	n.Do(func() error {...})     // fn on a locked OS thread inside (setns)
//	n.Listen("tcp", ":80")       // a listener whose socket lives inside
//	n.DialContext(ctx, "tcp", a) // fits http.Transport.DialContext
//
//	Veth(t, End{NS: a, Name: "eth0", Addr: "10.1.0.1/24"},
//		End{NS: b, Name: "eth0", Addr: "10.1.0.2/24"})
//	// A veth pair; an End with an Addr is addressed and up, one without
//	// is left down for the code under test; NS nil is the test's own
//	// namespace (the name must then be unique on the machine).
//
//	l := NewLab(t, "mir")        // bridge br0 in namespace piimg-mir<hex>-br
//	l.Subnet                     // "10.X.Y": the lab's random 10.X.Y.0/24
//	l.Addr(3)                    // "10.X.Y.3", e.g. for code under test to set
//	h := l.Add("web01", 2)       // namespace piimg-mir<hex>-web01 whose eth0
//	                             // is 10.X.Y.2/24 on the bridge (0: no address, down)
//	h.Addr, h.NS                 // "10.X.Y.2" and the host's namespace
//	h.SetLink(false)             // pull the host's cable (bridge port down)
//
// Code run with Do (and Listen, DialContext) must report failure by its
// error: it runs on a goroutine of its own, where t.Fatal does not work.
// Sockets made there stay in the namespace; using them needs no switch.
//
// Cleanup runs in reverse order of creation: veth pairs are deleted before
// their namespaces (so an end in the test's own namespace never outlives
// the test), then each namespace; a namespace that cannot be deleted fails
// the test. Cleanups the test registers after creating a namespace (closing
// listeners, killing processes started in it) run before it goes.
package netnstest

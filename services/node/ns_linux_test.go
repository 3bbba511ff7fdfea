package node

import "testing"

func TestStatFlags(t *testing.T) {
	tests := []struct {
		stat    string
		want    uint64
		wantErr bool
	}{
		{"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0", 2129984, false},
		{"77 (a) b) (c) R 1 77 77 0 -1 4194560 12 0", 4194560, false},
		{"1 (init", 0, true},
		{"1 (init) S 0 1", 0, true},
	}
	for _, tt := range tests {
		got, err := statFlags(tt.stat)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("statFlags(%q) = %d, %v; want %d, error %v", tt.stat, got, err, tt.want, tt.wantErr)
		}
	}
	if got, err := statFlags("2 (kthreadd) S 0 0 0 0 -1 2129984 0"); err != nil || got&pfKthread == 0 {
		t.Errorf("kthreadd's flags lack PF_KTHREAD")
	}
}

func TestInInitialNamespaceHere(t *testing.T) {
	initial, err := inInitialNamespace("net")
	t.Logf("initial net namespace: %v (%v)", initial, err)
	if err != nil && !initial {
		t.Error("an error must come with true, so callers refuse")
	}
}

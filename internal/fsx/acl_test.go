package fsx

import "testing"

func TestPrivateSDDL(t *testing.T) {
	if got, want := PrivateSDDL("S-1-5-21-1-2-3-1001"), "D:P(A;OICI;FA;;;S-1-5-21-1-2-3-1001)"; got != want {
		t.Errorf("PrivateSDDL = %q, want %q", got, want)
	}
}

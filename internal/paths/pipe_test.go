package paths

import "testing"

func TestPipeName(t *testing.T) {
	const sid = "S-1-5-21-1004336348-1177238915-682003330-512"
	if got, want := PipeName(sid), `\\.\pipe\keychain-auth-`+sid; got != want {
		t.Errorf("PipeName = %q, want %q", got, want)
	}
	if PipeName("S-1-5-18") == PipeName("S-1-5-19") {
		t.Error("two SIDs share one pipe")
	}
}

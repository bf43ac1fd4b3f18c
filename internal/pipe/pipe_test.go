package pipe

import "testing"

func TestSDDL(t *testing.T) {
	const sid = "S-1-5-21-1004336348-1177238915-682003330-1001"
	got := SDDL(sid)
	if want := "D:P(A;;GA;;;" + sid + ")(A;;GA;;;SY)"; got != want {
		t.Fatalf("SDDL = %q, want %q", got, want)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		`\\.\pipe\keychain-auth-S-1-5-21-1`: true,
		`\\.\pipe\`:                         false,
		`\\server\pipe\keychain-auth`:       false,
		`/tmp/agent.sock`:                   false,
		`\\.\pipe\a\b`:                      false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

package config

import (
	"strings"
	"testing"

	"golang.org/x/sys/windows"
)

func TestUnsafeACL(t *testing.T) {
	const me = "S-1-5-21-1-2-3-1001"
	for _, c := range []struct {
		sddl, want string // want: "" for safe, else a part of the reason
	}{
		{"O:" + me + "D:P(A;;FA;;;" + me + ")", ""},
		{"O:" + me + "D:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;" + me + ")", ""},
		{"O:" + me + "D:(A;;FA;;;" + me + ")(A;;0x1200a9;;;WD)", ""},             // Everyone may read
		{"O:" + me + "D:(A;OICIIO;FA;;;S-1-3-0)(A;;FA;;;" + me + ")", ""},        // inherit-only
		{"O:" + me + "D:(D;;FA;;;WD)(A;;FA;;;" + me + ")", ""},                   // a deny
		{"O:" + me + "D:(A;;FA;;;" + me + ")(A;;FA;;;WD)", "lets S-1-1-0 write"}, // Everyone may write
		{"O:" + me + "D:(A;;FW;;;S-1-5-21-1-2-3-1002)", "lets S-1-5-21-1-2-3-1002 write"},
		{"O:" + me + "D:(A;;0x40;;;BU)", "lets S-1-5-32-545 write"}, // delete child: Users
		{"O:S-1-5-21-1-2-3-1002D:P(A;;FA;;;" + me + ")", "is owned by S-1-5-21-1-2-3-1002"},
	} {
		sd, err := windows.SecurityDescriptorFromString(c.sddl)
		if err != nil {
			t.Fatalf("%s: %v", c.sddl, err)
		}
		got := unsafeACL(sd, me)
		switch {
		case c.want == "" && got != "":
			t.Errorf("%s: refused (%s), want accepted", c.sddl, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: %q, want a refusal containing %q", c.sddl, got, c.want)
		}
	}
}

// A null DACL grants everyone everything. Built by hand: Wine turns the SDDL
// "D:NO_ACCESS_CONTROL" into an empty DACL instead.
func TestUnsafeACLNullDACL(t *testing.T) {
	const me = "S-1-5-21-1-2-3-1001"
	sd, err := windows.NewSecurityDescriptor()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := windows.StringToSid(me)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.SetOwner(owner, false); err != nil {
		t.Fatal(err)
	}
	if err := sd.SetDACL(nil, true, false); err != nil {
		t.Fatal(err)
	}
	if got := unsafeACL(sd, me); !strings.Contains(got, "no DACL") {
		t.Errorf("null DACL: %q, want a refusal", got)
	}
}

// An allow entry of another type (callback, object, conditional) grants
// write on terms the check does not evaluate: refused. A callback allow has
// the plain layout plus optional data, so it is made by retyping a plain
// entry (Wine's SDDL parser knows no object or callback entries).
func TestUnsafeACLOtherAllowTypes(t *testing.T) {
	const me = "S-1-5-21-1-2-3-1001"
	sd, err := windows.SecurityDescriptorFromString("O:" + me + "D:(A;;FA;;;" + me + ")(A;;FA;;;WD)")
	if err != nil {
		t.Fatal(err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		t.Fatal(err)
	}
	var ace *windows.ACCESS_ALLOWED_ACE
	if err := windows.GetAce(dacl, 1, &ace); err != nil {
		t.Fatal(err)
	}
	ace.Header.AceType = 0x9 // ACCESS_ALLOWED_CALLBACK_ACE_TYPE
	if got := unsafeACL(sd, me); !strings.Contains(got, "access entry of type 9") {
		t.Errorf("a callback allow of write to Everyone: %q, want it refused", got)
	}
}

package fsx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/windows"
)

func dacl(t *testing.T, path string) string {
	t.Helper()
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	return sd.String()
}

func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

func TestMkdirPrivateRestrictsACL(t *testing.T) {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	sid := tu.User.Sid.String()
	base, err := os.MkdirTemp("", "fsx-acl-")
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's cleanup fails under Wine (Go 1.26's RemoveAll).
	defer os.RemoveAll(base)
	before := dacl(t, base)

	dir := filepath.Join(base, "private")
	if err := MkdirPrivate(dir); err != nil {
		t.Fatal(err)
	}
	got := dacl(t, dir)
	if underWine() && !strings.HasPrefix(got, "D:P") {
		t.Skipf("SKIPPED under Wine: it does not keep file DACLs (it reports %q); this runs on real Windows only", got)
	}
	if !strings.HasPrefix(got, "D:P") || strings.Count(got, "(A;") != 1 || !strings.Contains(got, ";"+sid+")") {
		t.Errorf("DACL of a private directory = %q, want only %s, protected", got, sid)
	}
	if err := MkdirPrivate(base); err != nil {
		t.Fatal(err)
	}
	if after := dacl(t, base); after != before {
		t.Errorf("MkdirPrivate changed the DACL of a directory that already existed: %q, was %q", after, before)
	}
}

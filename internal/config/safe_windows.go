package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Trusted writers besides the user: the accounts that can take any file
// anyway.
const (
	sidSystem         = "S-1-5-18"
	sidAdministrators = "S-1-5-32-544"
)

// fileDeleteChild lets a holder of a directory delete (and so replace) the
// files in it.
const fileDeleteChild = 0x40

// writeAccess is every right that lets a holder change the file's content
// or its ACL, or replace it.
const writeAccess = windows.FILE_WRITE_DATA | windows.FILE_APPEND_DATA | windows.WRITE_DAC | windows.WRITE_OWNER |
	windows.DELETE | windows.GENERIC_WRITE | windows.GENERIC_ALL | fileDeleteChild

// checkSafe is the Windows counterpart of the Unix mode and owner checks:
// config.json and its directory must be owned by the user (or SYSTEM or
// Administrators), and no one else may write them. Mode bits mean nothing
// here; the ACL is what decides.
func checkSafe(path string, _ fs.FileInfo, _ int) error {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return fmt.Errorf("%w: cannot tell who this process runs as: %v", ErrUnsafe, err)
	}
	me := tu.User.Sid.String()
	for _, p := range []string{path, filepath.Dir(path)} {
		sd, err := windows.GetNamedSecurityInfo(p, windows.SE_FILE_OBJECT,
			windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
		if err != nil {
			return fmt.Errorf("%w: cannot read the ACL of %s: %v", ErrUnsafe, p, err)
		}
		if why := unsafeACL(sd, me); why != "" {
			return fmt.Errorf("%w: %s %s; to make it yours alone, run: icacls \"%s\" /inheritance:r /grant:r \"%%USERNAME%%:F\"",
				ErrUnsafe, p, why, p)
		}
	}
	return nil
}

// unsafeACL says why sd lets someone other than me, SYSTEM or
// Administrators change the object, or "" when it does not.
// ACE types that deny access (winnt.h).
const (
	aceDenied               = 0x1
	aceDeniedObject         = 0x6
	aceDeniedCallback       = 0xA
	aceDeniedCallbackObject = 0xC
)

func unsafeACL(sd *windows.SECURITY_DESCRIPTOR, me string) string {
	trusted := func(sid string) bool { return sid == me || sid == sidSystem || sid == sidAdministrators }
	owner, _, err := sd.Owner()
	if err != nil || owner == nil {
		return "has no owner that can be read"
	}
	if o := owner.String(); !trusted(o) {
		return "is owned by " + o + ", who can change its ACL"
	}
	dacl, _, err := sd.DACL()
	if errors.Is(err, windows.ERROR_OBJECT_NOT_FOUND) || (err == nil && dacl == nil) {
		return "has no DACL, which lets everyone write it"
	}
	if err != nil {
		return "has a DACL that cannot be read: " + err.Error()
	}
	for i := range uint32(dacl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if windows.GetAce(dacl, i, &ace) != nil {
			return "has a DACL that cannot be read"
		}
		if ace.Header.AceFlags&windows.INHERIT_ONLY_ACE != 0 || ace.Mask&writeAccess == 0 {
			continue
		}
		switch ace.Header.AceType {
		case windows.ACCESS_ALLOWED_ACE_TYPE:
		case aceDenied, aceDeniedObject, aceDeniedCallback, aceDeniedCallbackObject:
			continue // a deny can only take access away
		default:
			// An object, callback or conditional allow grants write to a
			// SID at another offset, on conditions not evaluated here.
			return fmt.Sprintf("has an access entry of type %d that may let others write it; keep only plain entries for you, SYSTEM and Administrators", ace.Header.AceType)
		}
		if sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart)).String(); !trusted(sid) {
			return "lets " + sid + " write it"
		}
	}
	return ""
}

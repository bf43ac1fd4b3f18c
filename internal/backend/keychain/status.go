package keychain

import (
	"errors"
	"fmt"

	"github.com/The-17/keychain-auth/internal/backend"
)

// OSStatus codes Security.framework returns (<Security/SecBase.h>,
// <MacTypes.h>).
const (
	errSecSuccess               = 0
	errSecUserCanceled          = -128
	errSecParam                 = -50
	errSecAllocate              = -108
	errSecWrPerm                = -61
	errSecNotAvailable          = -25291
	errSecReadOnly              = -25292
	errSecAuthFailed            = -25293
	errSecNoSuchKeychain        = -25294
	errSecDuplicateItem         = -25299
	errSecItemNotFound          = -25300
	errSecNoDefaultKeychain     = -25307
	errSecInteractionNotAllowed = -25308
	errSecInteractionRequired   = -25315
	errSecDecode                = -26275
	errSecMissingEntitlement    = -34018
)

// statusNames says in words what the codes above mean, for messages.
var statusNames = map[int32]string{
	errSecUserCanceled:          "the user cancelled the Keychain prompt",
	errSecParam:                 "invalid parameter",
	errSecAllocate:              "out of memory",
	errSecWrPerm:                "write permission denied",
	errSecNotAvailable:          "no keychain is available",
	errSecReadOnly:              "the keychain is read-only",
	errSecAuthFailed:            "the keychain could not be unlocked (wrong password or access denied)",
	errSecNoSuchKeychain:        "the keychain does not exist",
	errSecDuplicateItem:         "the item already exists",
	errSecItemNotFound:          "the item was not found",
	errSecNoDefaultKeychain:     "there is no default keychain",
	errSecInteractionNotAllowed: "the keychain is locked and no user is there to unlock it",
	errSecInteractionRequired:   "the keychain needs the user to unlock it",
	errSecDecode:                "the keychain could not decode the item",
	errSecMissingEntitlement:    "the program lacks the entitlement this keychain requires",
}

// Status is an OSStatus a Security.framework call returned.
type Status int32

func (s Status) Error() string {
	if name, ok := statusNames[int32(s)]; ok {
		return fmt.Sprintf("OSStatus %d: %s", int32(s), name)
	}
	return fmt.Sprintf("OSStatus %d", int32(s))
}

// statusError maps a failed call's OSStatus to the backend's sentinel
// errors, keeping the Status for errors.As. op says what was attempted on
// which item; it never contains a value. errSecSuccess maps to nil.
func statusError(op string, st int32) error {
	if st == errSecSuccess {
		return nil
	}
	s := Status(st)
	var kind error
	hint := ""
	switch st {
	case errSecItemNotFound:
		kind = backend.ErrNotFound
	case errSecAuthFailed, errSecUserCanceled, errSecInteractionNotAllowed, errSecInteractionRequired:
		kind = backend.ErrLocked
		hint = "; unlock the login keychain (log in at the Mac, or: security unlock-keychain) and allow keychain-auth when macOS asks"
	case errSecNotAvailable, errSecNoSuchKeychain, errSecNoDefaultKeychain, errSecMissingEntitlement:
		kind = backend.ErrUnavailable
		hint = "; check that the user has a login keychain (Keychain Access), or start with --backend file"
	}
	if kind == nil {
		return fmt.Errorf("keychain: %s: %w", op, s)
	}
	return fmt.Errorf("keychain: %s: %w%s: %w", op, s, hint, kind)
}

// isStatus reports whether err carries OSStatus code.
func isStatus(err error, code int32) bool {
	var s Status
	return errors.As(err, &s) && int32(s) == code
}

package file

import (
	"errors"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Errors of the file store. Each arrives inside an *Error, which also wraps
// backend.ErrUnavailable, so callers that only know the backend package still
// see "the store cannot be used".
var (
	// ErrWrongPassphrase: the passphrase or key does not open the store. It is
	// never taken to mean "empty store".
	ErrWrongPassphrase = errors.New("wrong passphrase or key")
	// ErrCorrupt: the file cannot be parsed, has an unsupported version or
	// unsafe parameters, or an item fails authentication.
	ErrCorrupt = errors.New("store file is corrupt")
	// ErrIntegrity: every item opens, but the set of items is not the one
	// this store last wrote: an item was removed or added, an older copy of
	// an item was put back, or the whole file was rolled back to an older
	// version than the one recorded outside it.
	ErrIntegrity = errors.New("store file failed its whole-store integrity check")
	// ErrNoStore: the file does not exist and creation was not allowed.
	ErrNoStore = errors.New("store file does not exist")
	// ErrModified: another process replaced the file after this Store read
	// it, so writing would lose that process's changes.
	ErrModified = errors.New("store file was changed by another process")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store is closed")
)

// Error is what Open and the Store's methods return for the conditions above.
type Error struct {
	Path   string
	Kind   error  // one of the Err* sentinels of this package
	Detail string // what exactly was wrong; never a secret
	Err    error  // underlying cause, if any
}

func (e *Error) Error() string {
	msg := "file store " + e.Path + ": " + e.Kind.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if h := hint(e.Kind); h != "" {
		msg += " (" + h + ")"
	}
	return msg
}

// Unwrap lets errors.Is match the kind, backend.ErrUnavailable and the cause.
func (e *Error) Unwrap() []error {
	errs := []error{e.Kind, backend.ErrUnavailable}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func hint(kind error) string {
	switch kind {
	case ErrWrongPassphrase:
		return "check the passphrase (prompt, --passphrase-file or KEYCHAIN_AUTH_PASSPHRASE); the file was not changed"
	case ErrCorrupt:
		return "the file was not changed; restore it from a backup, or move it and its .version file aside to start a new, empty store"
	case ErrIntegrity:
		return "the file was not changed and nothing was served from it; restore the newest copy of the store from a backup"
	case ErrNoStore:
		return "nothing was created; start the daemon with a new passphrase to create the store"
	case ErrModified:
		return "nothing was written; only one daemon may use a store: stop the other one and restart this one"
	case ErrClosed:
		return "reopen the store"
	}
	return ""
}

func storeErr(path string, kind error, detail string, cause error) error {
	return &Error{Path: path, Kind: kind, Detail: detail, Err: cause}
}

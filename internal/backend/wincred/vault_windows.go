package wincred

import (
	"context"
	"errors"
	"strings"

	wc "github.com/danieljoos/wincred"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Register adds the Credential Manager backend to r.
func Register(r *backend.Registry) {
	r.Register(Name, func(ctx context.Context, opts backend.Options) (backend.Backend, error) {
		return Open(ctx, opts)
	})
}

// Open returns the store over the current user's Credential Manager.
func Open(ctx context.Context, opts backend.Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return newStore(credVault{}, DefaultNamespace, opts.Logger), nil
}

// credVault is the user's Credential Manager: generic credentials, persisted
// for the user on this machine (CRED_PERSIST_LOCAL_MACHINE, which does not
// roam to other machines).
type credVault struct{}

const comment = "keychain-auth secret; change it through keychain-auth, not here"

func (credVault) read(name string) ([]byte, error) {
	c, err := wc.GetGenericCredential(name)
	if errors.Is(err, wc.ErrElementNotFound) {
		return nil, errNoCred
	}
	if err != nil {
		return nil, err
	}
	return c.CredentialBlob, nil
}

func (credVault) write(name string, blob []byte) error {
	c := wc.NewGenericCredential(name)
	c.CredentialBlob = blob
	c.Comment = comment
	c.Persist = wc.PersistLocalMachine
	return c.Write()
}

func (credVault) remove(name string) error {
	err := wc.NewGenericCredential(name).Delete()
	if errors.Is(err, wc.ErrElementNotFound) {
		return nil
	}
	return err
}

// list asks CredEnumerate for prefix*. A "*" inside the prefix would be a
// wildcard to it, so the filter stops before the first one and the caller's
// exact prefix check does the rest.
func (credVault) list(prefix string) ([]cred, error) {
	filter, _, _ := strings.Cut(prefix, "*")
	cs, err := wc.FilteredList(filter + "*")
	if err != nil {
		return nil, err
	}
	out := make([]cred, 0, len(cs))
	for _, c := range cs {
		out = append(out, cred{name: c.TargetName, blob: c.CredentialBlob})
	}
	return out, nil
}

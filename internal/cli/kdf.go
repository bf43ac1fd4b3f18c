package cli

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/file"
)

// The file store's key is derived with Argon2id, which by design takes 64
// MiB of memory for a moment. The daemon lives for days; done in its own
// process, that moment would set its peak memory for good (and, with
// memory locked, keep the pages). So the daemon runs its own image again as
// the hidden command "derive-key", which derives the key and exits.
//
// The request goes through the child's standard input, never its argv or
// environment, and the child starts with an empty environment: nothing of
// the daemon's (KEYCHAIN_AUTH_PASSPHRASE among it) reaches it. The child
// makes itself non-dumpable and locks its memory like the daemon before it
// reads the passphrase.

// kdfRequest is what the daemon sends derive-key.
type kdfRequest struct {
	Passphrase []byte `json:"passphrase"`
	Salt       []byte `json:"salt"`
	Time       uint32 `json:"time"`
	MemoryKiB  uint32 `json:"memory_kib"`
	Threads    uint8  `json:"threads"`
}

// maxKDFRequest bounds what derive-key reads: a passphrase is at most a
// few KiB.
const maxKDFRequest = 1 << 20

func (a *app) deriveKeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "derive-key",
		Short:  "Derive a file store key from a request on stdin (run by the daemon itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !a.noHarden {
				harden()
			}
			in, err := io.ReadAll(io.LimitReader(a.stdin, maxKDFRequest+1))
			defer clear(in)
			if err != nil {
				return fmt.Errorf("derive-key: read the request: %w", err)
			}
			if len(in) > maxKDFRequest {
				return errors.New("derive-key: the request is over 1 MiB")
			}
			var req kdfRequest
			if err := json.Unmarshal(in, &req); err != nil {
				return fmt.Errorf("derive-key: the request is not valid JSON: %w", err)
			}
			defer clear(req.Passphrase)
			key, err := file.DeriveKey(req.Passphrase, req.Salt, backend.Argon2id{Time: req.Time, MemoryKiB: req.MemoryKiB, Threads: req.Threads})
			if err != nil {
				return fmt.Errorf("derive-key: %w", err)
			}
			defer clear(key)
			out := make([]byte, hex.EncodedLen(len(key))+1)
			defer clear(out)
			hex.Encode(out, key)
			out[len(out)-1] = '\n'
			_, err = a.stdout.Write(out)
			return err
		},
	}
}

// deriveKeyInChild runs derive-key in a new process of this very image.
func deriveKeyInChild(passphrase, salt []byte, p backend.Argon2id) ([]byte, error) {
	exe, err := selfImage()
	if err != nil {
		return nil, fmt.Errorf("find this program to run the key derivation: %w", err)
	}
	in, err := json.Marshal(kdfRequest{Passphrase: passphrase, Salt: salt, Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads})
	defer clear(in)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "derive-key")
	cmd.Env = []string{}
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	defer clear(out)
	if err != nil {
		return nil, fmt.Errorf("the key derivation process failed: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	out = bytes.TrimSpace(out)
	key := make([]byte, hex.DecodedLen(len(out)))
	if _, err := hex.Decode(key, out); err != nil {
		clear(key)
		return nil, errors.New("the key derivation process answered something that is not a hex key")
	}
	return key, nil
}

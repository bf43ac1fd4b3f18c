package file

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/fsx"
)

// integrityDoc is the whole-store record: the store's version, raised by one
// on every write, and an HMAC-SHA256 over that version, the header and every
// item. Per-item AEAD alone lets an item be dropped or an older ciphertext of
// it be put back; the MAC does not.
type integrityDoc struct {
	Counter uint64 `json:"counter"`
	MAC     []byte `json:"mac"`
}

const (
	macInfo   = "keychain-auth/store-mac/v1"
	macSize   = sha256.Size
	maxVerLen = 4 << 10
)

// deriveMACKey derives the MAC key from the store key, so that nobody who
// cannot open the store can re-MAC an edited item set.
func deriveMACKey(key []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, key, nil, macInfo, macSize)
}

// storeMAC authenticates counter, header and items. Every field is length- or
// count-prefixed, so no two different stores share an input.
func storeMAC(macKey []byte, hdr document, counter uint64, items map[string]map[string]sealed) []byte {
	m := hmac.New(sha256.New, macKey)
	var buf []byte
	u64 := func(v uint64) { buf = binary.BigEndian.AppendUint64(buf, v) }
	lp := func(b []byte) { u64(uint64(len(b))); buf = append(buf, b...) }
	flush := func() { m.Write(buf); buf = buf[:0] }

	buf = append(buf, macInfo...)
	u64(counter)
	u64(uint64(hdr.Version))
	lp([]byte(hdr.KDF.Alg))
	lp(hdr.KDF.Salt)
	u64(hdr.KDF.Time)
	u64(hdr.KDF.MemoryKiB)
	u64(hdr.KDF.Threads)
	if hdr.Check != nil {
		lp(hdr.Check.Nonce)
		lp(hdr.Check.Ciphertext)
	}
	n := 0
	for _, svc := range items {
		n += len(svc)
	}
	u64(uint64(n))
	flush()
	for _, service := range slices.Sorted(maps.Keys(items)) {
		for _, target := range slices.Sorted(maps.Keys(items[service])) {
			sl := items[service][target]
			lp([]byte(service))
			lp([]byte(target))
			lp(sl.Nonce)
			lp(sl.Ciphertext)
			flush()
		}
	}
	return m.Sum(nil)
}

// storeID names one store across rewrites: its check record is sealed once,
// at creation, with a random nonce, and never changes.
func storeID(hdr document) string {
	h := sha256.New()
	if hdr.Check != nil {
		h.Write(hdr.Check.Nonce)
		h.Write(hdr.Check.Ciphertext)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// versionDoc is the version file: the last version of which store this
// daemon wrote or accepted.
type versionDoc struct {
	Store   string `json:"store"`
	Counter uint64 `json:"counter"`
}

// readVersion returns the version file's record, or ok=false when there is
// none.
func readVersion(path string) (v versionDoc, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return versionDoc{}, false, nil
	}
	if err != nil {
		return versionDoc{}, false, fmt.Errorf("version file %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxVerLen))
	if err != nil {
		return versionDoc{}, false, fmt.Errorf("version file %s: %w: %w", path, backend.ErrUnavailable, err)
	}
	if err := json.Unmarshal(data, &v); err != nil || v.Store == "" {
		return versionDoc{}, false, fmt.Errorf("version file %s is damaged (it keeps the store's last version): "+
			"remove it to accept the store file as it is now: %w", path, backend.ErrUnavailable)
	}
	return v, true, nil
}

func writeVersion(path string, v versionDoc) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := fsx.MkdirPrivate(filepath.Dir(path)); err != nil {
		return err
	}
	return fsx.WriteFile(path, append(data, '\n'), fsx.FileMode)
}

// verifyIntegrity checks the loaded document against its MAC and against
// the version recorded outside it. It returns whether the version file needs
// to be brought up to the file's version.
func (s *Store) verifyIntegrity(doc *document, known versionDoc, haveKnown bool) (stale bool, err error) {
	id := storeID(s.header)
	ours := haveKnown && known.Store == id
	if doc.Integrity == nil {
		if ours {
			return false, storeErr(s.path, ErrIntegrity, fmt.Sprintf(
				"the file has no integrity record, but version %d was written with one (see %s): "+
					"the record was removed, or an older keychain-auth rewrote the file", known.Counter, s.versionPath), nil)
		}
		s.legacy = true
		return false, nil
	}
	want := storeMAC(s.macKey, s.header, doc.Integrity.Counter, s.items)
	if !hmac.Equal(want, doc.Integrity.MAC) {
		return false, storeErr(s.path, ErrIntegrity,
			"the item set does not match its MAC: an item was removed or added, or an older copy of an item was put back", nil)
	}
	if ours && doc.Integrity.Counter < known.Counter {
		return false, storeErr(s.path, ErrIntegrity, fmt.Sprintf(
			"the file is version %d, older than version %d recorded in %s: it was rolled back; "+
				"restore the newest copy, or remove %s to accept this older one",
			doc.Integrity.Counter, known.Counter, s.versionPath, s.versionPath), nil)
	}
	s.counter = doc.Integrity.Counter
	return !ours || known.Counter != s.counter, nil
}

package file

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/The-17/keychain-auth/internal/backend"
)

// The on-disk document. []byte fields are base64 in JSON. Service and target
// names are in clear (they are the lookup keys and are bound to each item as
// associated data); values and attributes exist only inside ciphertexts.
//
//	{"version":1,
//	 "kdf":{"alg":"argon2id","salt":..,"time":3,"memory_kib":65536,"threads":4},
//	 "check":{"nonce":..,"ciphertext":..},
//	 "items":[{"service":..,"target":..,"nonce":..,"ciphertext":..}],
//	 "integrity":{"counter":7,"mac":..}}
//
// Stores written before the integrity record existed lack it; they open, and
// get one on their next write (see integrity.go).
type document struct {
	Version   int           `json:"version"`
	KDF       kdfDoc        `json:"kdf"`
	Check     *sealed       `json:"check"`
	Items     []itemDoc     `json:"items"`
	Integrity *integrityDoc `json:"integrity,omitempty"`
}

// kdfDoc uses wide integers so that absurd values parse and are then refused
// with a clear message instead of overflowing.
type kdfDoc struct {
	Alg       string `json:"alg"`
	Salt      []byte `json:"salt,omitempty"`
	Time      uint64 `json:"time,omitempty"`
	MemoryKiB uint64 `json:"memory_kib,omitempty"`
	Threads   uint64 `json:"threads,omitempty"`
}

type sealed struct {
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

type itemDoc struct {
	Service    string `json:"service"`
	Target     string `json:"target"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

const (
	formatVersion = 1
	// algArgon2id derives the key from a passphrase; algRawKey means the key
	// was given directly (system mode) and nothing about it is stored.
	algArgon2id = "argon2id"
	algRawKey   = "raw-key"

	keySize  = chacha20poly1305.KeySize
	saltSize = 16

	// checkPlaintext is sealed at creation; failing to open it means the
	// key is wrong, which must never be confused with an empty store.
	checkPlaintext = "keychain-auth file store v1"
	checkAD        = "keychain-auth/check/v1"
	itemADPrefix   = "keychain-auth/item/v1"

	payloadVersion = 1

	// maxFileSize bounds what Open reads: 1000 items per service of 64 KiB
	// in base64 across a dozen services is well below it.
	maxFileSize = 1 << 30
)

// KDFParams are the Argon2id parameters used when a store is created. An
// existing store always uses the parameters stored in its file.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultKDFParams is RFC 9106's second recommended option (t=3, 64 MiB, 4
// lanes), for machines that cannot spare 2 GiB at every daemon start.
func DefaultKDFParams() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
}

// Bounds on parameters, checked before any memory is allocated, so a damaged
// or hostile file cannot make the daemon exhaust memory or spin for hours.
const (
	maxKDFTime      = 100
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
)

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d is outside 1..%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB is outside %d..%d KiB", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// params converts and bounds-checks the stored parameters.
func (k kdfDoc) params() (KDFParams, error) {
	if k.Time > maxKDFTime || k.MemoryKiB > maxKDFMemoryKiB || k.Threads > 255 {
		return KDFParams{}, fmt.Errorf("argon2id parameters time=%d memory_kib=%d threads=%d are out of range", k.Time, k.MemoryKiB, k.Threads)
	}
	p := KDFParams{Time: uint32(k.Time), MemoryKiB: uint32(k.MemoryKiB), Threads: uint8(k.Threads)}
	if err := p.validate(); err != nil {
		return KDFParams{}, err
	}
	if len(k.Salt) < saltSize || len(k.Salt) > 64 {
		return KDFParams{}, fmt.Errorf("argon2id salt is %d bytes, want %d..64", len(k.Salt), saltSize)
	}
	return p, nil
}

// derive runs the key derivation where opts says: through opts.DeriveKey
// when set, else here.
func derive(opts backend.Options, salt []byte, p KDFParams) ([]byte, error) {
	if opts.DeriveKey == nil {
		return deriveKey(opts.Passphrase, salt, p), nil
	}
	key, err := opts.DeriveKey(opts.Passphrase, salt, backend.Argon2id{Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads})
	if err == nil && len(key) != keySize {
		clear(key)
		err = fmt.Errorf("the key derivation returned %d bytes, want %d", len(key), keySize)
	}
	if err != nil {
		return nil, fmt.Errorf("derive the store key: %w", err)
	}
	return key, nil
}

// DeriveKey is Argon2id as the file store uses it, for a process that
// derives keys on the store's behalf (see backend.Options.DeriveKey).
func DeriveKey(passphrase, salt []byte, p backend.Argon2id) ([]byte, error) {
	kp := KDFParams{Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads}
	if err := kp.validate(); err != nil {
		return nil, err
	}
	return deriveKey(passphrase, salt, kp), nil
}

func deriveKey(passphrase, salt []byte, p KDFParams) []byte {
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
}

// itemAD binds a ciphertext to its service and target. Length prefixes keep
// ("a","bc") and ("ab","c") apart, so an item cannot be moved to another name.
func itemAD(service, target string) []byte {
	ad := make([]byte, 0, len(itemADPrefix)+8+len(service)+len(target))
	ad = append(ad, itemADPrefix...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(service)))
	ad = append(ad, service...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(target)))
	ad = append(ad, target...)
	return ad
}

// encodePayload lays out what an item seals: a version byte, the value, and
// the attributes sorted by key, every field length-prefixed. The caller owns
// (and zeroes) the result.
func encodePayload(value []byte, attrs map[string]string) []byte {
	n := 1 + binary.MaxVarintLen64*(2+2*len(attrs)) + len(value)
	for k, v := range attrs {
		n += len(k) + len(v)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, payloadVersion)
	buf = binary.AppendUvarint(buf, uint64(len(value)))
	buf = append(buf, value...)
	buf = binary.AppendUvarint(buf, uint64(len(attrs)))
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(attrs[k])))
		buf = append(buf, attrs[k]...)
	}
	return buf
}

// decodePayload returns a fresh copy of the value, so the caller may zero p.
func decodePayload(p []byte) (value []byte, attrs map[string]string, err error) {
	if len(p) == 0 || p[0] != payloadVersion {
		return nil, nil, errors.New("unknown payload version")
	}
	p = p[1:]
	field := func() ([]byte, error) {
		n, used := binary.Uvarint(p)
		if used <= 0 || n > uint64(len(p)-used) {
			return nil, errors.New("truncated payload")
		}
		f := p[used : used+int(n)]
		p = p[used+int(n):]
		return f, nil
	}
	v, err := field()
	if err != nil {
		return nil, nil, err
	}
	count, used := binary.Uvarint(p)
	// Each pair needs at least two length bytes, which bounds count.
	if used <= 0 || count > uint64(len(p)-used)/2 {
		return nil, nil, errors.New("truncated payload")
	}
	p = p[used:]
	if count > 0 {
		attrs = make(map[string]string, count)
	}
	for range count {
		k, err := field()
		if err != nil {
			return nil, nil, err
		}
		val, err := field()
		if err != nil {
			return nil, nil, err
		}
		attrs[string(k)] = string(val)
	}
	if len(p) != 0 {
		return nil, nil, errors.New("trailing bytes in payload")
	}
	return append([]byte{}, v...), attrs, nil
}

// parseDocument checks everything that can be checked without the key.
func parseDocument(data []byte) (*document, error) {
	var doc document
	if err := json.Unmarshal(data, &doc); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			// Offset counts the offending byte; point at it, not past it.
			line, col := lineCol(data, max(syn.Offset-1, 0))
			return nil, fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			line, col := lineCol(data, typ.Offset)
			return nil, fmt.Errorf("wrong type at line %d, column %d: %w", line, col, err)
		}
		return nil, err
	}
	if doc.Version != formatVersion {
		return nil, fmt.Errorf("unsupported version %d (this keychain-auth reads version %d)", doc.Version, formatVersion)
	}
	if doc.Check == nil {
		return nil, errors.New("missing check record")
	}
	if err := checkSealed(doc.Check); err != nil {
		return nil, fmt.Errorf("check record: %w", err)
	}
	switch doc.KDF.Alg {
	case algArgon2id:
		if _, err := doc.KDF.params(); err != nil {
			return nil, err
		}
	case algRawKey:
	default:
		return nil, fmt.Errorf("unknown key derivation %q", doc.KDF.Alg)
	}
	if doc.Integrity != nil && len(doc.Integrity.MAC) != macSize {
		return nil, fmt.Errorf("integrity record: MAC is %d bytes, want %d", len(doc.Integrity.MAC), macSize)
	}
	type name struct{ service, target string }
	seen := make(map[name]bool, len(doc.Items))
	for i, it := range doc.Items {
		if err := checkSealed(&sealed{Nonce: it.Nonce, Ciphertext: it.Ciphertext}); err != nil {
			return nil, fmt.Errorf("item %d (%q in service %q): %w", i, it.Target, it.Service, err)
		}
		n := name{it.Service, it.Target}
		if seen[n] {
			return nil, fmt.Errorf("item %q in service %q appears twice", it.Target, it.Service)
		}
		seen[n] = true
	}
	return &doc, nil
}

func checkSealed(s *sealed) error {
	if len(s.Nonce) != chacha20poly1305.NonceSizeX {
		return fmt.Errorf("nonce is %d bytes, want %d", len(s.Nonce), chacha20poly1305.NonceSizeX)
	}
	if len(s.Ciphertext) < chacha20poly1305.Overhead {
		return errors.New("ciphertext is shorter than its authentication tag")
	}
	return nil
}

func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := string(data[:offset])
	line = strings.Count(before, "\n") + 1
	col = int(offset) - (strings.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

package wincred

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/The-17/keychain-auth/internal/backend"
)

// MaxBlob is Credential Manager's limit on one credential's blob
// (CRED_MAX_CREDENTIAL_BLOB_SIZE, 5*512 bytes). Wine does not enforce it;
// the tests' vault does.
const MaxBlob = 5 * 512

// A main credential's blob starts with a fixed-size line naming the chunks
// that follow it: "ka1 <generation> <chunk count> <sha256 of the record>\n".
// The rest of the blob, and the chunks in order, are the record.
const (
	mainMagic   = "ka1 "
	genLen      = 16
	maxChunks   = 9999
	mainHdrLen  = len(mainMagic) + genLen + 1 + 4 + 1 + 2*sha256.Size + 1
	firstCap    = MaxBlob - mainHdrLen
	maxRecordSz = firstCap + maxChunks*MaxBlob
)

// names maps items to credential names. The service is escaped so that its
// end is the first "/", which keeps ("a/b","c") and ("a","b/c") apart; the
// target is kept as it is, so an item's name is the one users see in
// Credential Manager: keychain-auth:<service>/<target>. Chunks live under
// another prefix (keychain-auth#...), so listing a service never meets them.
type names struct{ ns string }

var serviceEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

func (n names) serviceBase(service string) string {
	return n.ns + ":" + serviceEscaper.Replace(service) + "/"
}

func (n names) main(service, target string) string {
	return n.serviceBase(service) + target
}

// chunk names chunk i (from 1) of one generation of an item. Read from the
// right, "#<gen>.<i>" is unambiguous, so no two items share a chunk name.
func (n names) chunk(service, target, gen string, i int) string {
	return n.ns + "#" + serviceEscaper.Replace(service) + "/" + target + "#" + gen + "." + strconv.Itoa(i)
}

// mainHeader is the parsed first line of a main blob.
type mainHeader struct {
	gen    string
	chunks int
	sum    [sha256.Size]byte
}

func newGen() (string, error) {
	var b [genLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("credential manager: random generation id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// chunkCount is how many chunk credentials a record of size bytes needs
// beyond the main one.
func chunkCount(size int) int {
	if size <= firstCap {
		return 0
	}
	return (size - firstCap + MaxBlob - 1) / MaxBlob
}

// recordHeader is the JSON line before the value. Service and target are
// kept so that names which Credential Manager folds together (they ignore
// case) are never mistaken for each other.
type recordHeader struct {
	Service    string            `json:"s"`
	Target     string            `json:"t"`
	Attributes map[string]string `json:"a,omitempty"`
}

// encodeRecord is the JSON header line followed by the raw value.
func encodeRecord(service string, it backend.Item) ([]byte, error) {
	h, err := json.Marshal(recordHeader{Service: service, Target: it.Target, Attributes: it.Attributes})
	if err != nil {
		return nil, err
	}
	rec := make([]byte, 0, len(h)+1+len(it.Value))
	rec = append(append(append(rec, h...), '\n'), it.Value...)
	if len(rec) > maxRecordSz {
		clear(rec)
		return nil, fmt.Errorf("item of %d bytes is over the %d bytes %d chunk credentials can hold", len(rec), maxRecordSz, maxChunks+1)
	}
	return rec, nil
}

func decodeRecord(rec []byte) (service string, it backend.Item, err error) {
	i := bytes.IndexByte(rec, '\n')
	if i < 0 {
		return "", backend.Item{}, errors.New("damaged record: no header line")
	}
	var h recordHeader
	if err := json.Unmarshal(rec[:i], &h); err != nil {
		return "", backend.Item{}, fmt.Errorf("damaged record header: %w", err)
	}
	return h.Service, backend.Item{Target: h.Target, Value: bytes.Clone(rec[i+1:]), Attributes: h.Attributes}, nil
}

// splitRecord cuts rec into a main blob and chunk blobs, none over MaxBlob.
// The results are copies: the caller may clear rec.
func splitRecord(gen string, rec []byte) (mainHeader, []byte, [][]byte, error) {
	h := mainHeader{gen: gen, chunks: chunkCount(len(rec)), sum: sha256.Sum256(rec)}
	if len(gen) != genLen || h.chunks > maxChunks {
		return h, nil, nil, fmt.Errorf("cannot split a record of %d bytes", len(rec))
	}
	first := min(len(rec), firstCap)
	main := make([]byte, 0, mainHdrLen+first)
	main = fmt.Appendf(main, "%s%s %04d %x\n", mainMagic, gen, h.chunks, h.sum)
	main = append(main, rec[:first]...)
	chunks := make([][]byte, h.chunks)
	for i := range chunks {
		lo := firstCap + i*MaxBlob
		chunks[i] = bytes.Clone(rec[lo:min(len(rec), lo+MaxBlob)])
	}
	return h, main, chunks, nil
}

// parseMain reads a main blob's header line and returns the record's first
// part, which aliases blob.
func parseMain(blob []byte) (mainHeader, []byte, error) {
	var h mainHeader
	if len(blob) < mainHdrLen || string(blob[:len(mainMagic)]) != mainMagic || blob[mainHdrLen-1] != '\n' {
		return h, nil, errors.New("not a keychain-auth credential (unknown format); delete it or rename it")
	}
	f := strings.Fields(string(blob[len(mainMagic) : mainHdrLen-1]))
	if len(f) != 3 || len(f[0]) != genLen || len(f[1]) != 4 {
		return h, nil, errors.New("damaged credential header")
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 0 {
		return h, nil, errors.New("damaged credential header: chunk count")
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return h, nil, errors.New("damaged credential header: generation")
	}
	sum, err := hex.DecodeString(f[2])
	if err != nil || len(sum) != sha256.Size {
		return h, nil, errors.New("damaged credential header: checksum")
	}
	h.gen, h.chunks = f[0], n
	copy(h.sum[:], sum)
	return h, blob[mainHdrLen:], nil
}

// joinRecord puts the parts back together and checks them against the sum
// the main blob recorded, so chunks of another version are never mixed in.
func joinRecord(h mainHeader, parts [][]byte) ([]byte, error) {
	var size int
	for _, p := range parts {
		size += len(p)
	}
	rec := make([]byte, 0, size)
	for _, p := range parts {
		rec = append(rec, p...)
	}
	if sha256.Sum256(rec) != h.sum {
		clear(rec)
		return nil, errors.New("damaged: its chunks do not add up to what was written; delete the item and write it again")
	}
	return rec, nil
}

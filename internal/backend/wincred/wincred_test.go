package wincred

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/backendtest"
)

// fakeVault behaves as Credential Manager does where Wine does not: blobs
// over MaxBlob are refused and names ignore case. failWrite, when set, makes
// the write of a name containing it fail.
type fakeVault struct {
	mu        sync.Mutex
	creds     map[string]cred // by lower-cased name
	failWrite string
}

var errTooBig = errors.New("the parameter is incorrect (blob over CRED_MAX_CREDENTIAL_BLOB_SIZE)")

func newFakeVault() *fakeVault { return &fakeVault{creds: map[string]cred{}} }

func (v *fakeVault) read(name string) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.creds[strings.ToLower(name)]
	if !ok {
		return nil, errNoCred
	}
	return bytes.Clone(c.blob), nil
}

func (v *fakeVault) write(name string, blob []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(blob) > MaxBlob {
		return errTooBig
	}
	if v.failWrite != "" && strings.Contains(name, v.failWrite) {
		return errors.New("simulated write failure")
	}
	// Like CredWrite, replacing keeps the stored name's case.
	key := strings.ToLower(name)
	if old, ok := v.creds[key]; ok {
		name = old.name
	}
	v.creds[key] = cred{name: name, blob: bytes.Clone(blob)}
	return nil
}

func (v *fakeVault) remove(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.creds, strings.ToLower(name))
	return nil
}

func (v *fakeVault) list(prefix string) ([]cred, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []cred
	for k, c := range v.creds {
		if strings.HasPrefix(k, strings.ToLower(prefix)) {
			out = append(out, cred{name: c.name, blob: bytes.Clone(c.blob)})
		}
	}
	return out, nil
}

func (v *fakeVault) names() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, c := range v.creds {
		out = append(out, c.name)
	}
	sort.Strings(out)
	return out
}

func TestConformanceOverLimitedVault(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		s := newStore(newFakeVault(), DefaultNamespace, nil)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestChunkCount(t *testing.T) {
	t.Parallel()
	if firstCap != MaxBlob-91 {
		t.Fatalf("firstCap = %d, want %d: the main header line is 91 bytes", firstCap, MaxBlob-91)
	}
	for _, c := range []struct{ size, want int }{
		{0, 0}, {1, 0}, {firstCap, 0}, {firstCap + 1, 1}, {firstCap + MaxBlob, 1},
		{firstCap + MaxBlob + 1, 2}, {6000, 2}, {64<<10 + 200, 25}, {firstCap + 25*MaxBlob, 25}, {firstCap + 25*MaxBlob + 1, 26},
	} {
		if got := chunkCount(c.size); got != c.want {
			t.Errorf("chunkCount(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

func TestSplitRecordRoundTrip(t *testing.T) {
	t.Parallel()
	gen := "0123456789abcdef"
	for _, size := range []int{0, 1, firstCap - 1, firstCap, firstCap + 1, firstCap + MaxBlob, firstCap + MaxBlob + 1, 6000, 70000} {
		rec := make([]byte, size)
		for i := range rec {
			rec[i] = byte(i * 7)
		}
		h, main, chunks, err := splitRecord(gen, rec)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(main) > MaxBlob {
			t.Errorf("size %d: main blob is %d bytes, over %d", size, len(main), MaxBlob)
		}
		if len(chunks) != chunkCount(size) || h.chunks != len(chunks) {
			t.Errorf("size %d: %d chunks, header says %d, want %d", size, len(chunks), h.chunks, chunkCount(size))
		}
		for i, c := range chunks {
			if len(c) > MaxBlob || len(c) == 0 {
				t.Errorf("size %d: chunk %d is %d bytes", size, i+1, len(c))
			}
			if i < len(chunks)-1 && len(c) != MaxBlob {
				t.Errorf("size %d: inner chunk %d is %d bytes, want full", size, i+1, len(c))
			}
		}
		ph, first, err := parseMain(main)
		if err != nil {
			t.Fatalf("size %d: parseMain: %v", size, err)
		}
		if ph != h {
			t.Errorf("size %d: parsed header %+v, want %+v", size, ph, h)
		}
		got, err := joinRecord(ph, append([][]byte{first}, chunks...))
		if err != nil || !bytes.Equal(got, rec) {
			t.Errorf("size %d: record did not round-trip (err %v)", size, err)
		}
		if len(chunks) > 0 {
			chunks[0][0] ^= 1
			if _, err := joinRecord(ph, append([][]byte{first}, chunks...)); err == nil {
				t.Errorf("size %d: a changed chunk was accepted", size)
			}
		}
	}
}

func TestParseMainRejectsForeignBlobs(t *testing.T) {
	t.Parallel()
	good := fmt.Appendf(nil, "ka1 0123456789abcdef 0002 %x\n", sha256.Sum256(nil))
	for _, b := range [][]byte{nil, []byte("password"), good[:len(good)-1], bytes.Replace(good, []byte("0002"), []byte("00x2"), 1),
		bytes.Replace(good, []byte("0123"), []byte("zz23"), 1)} {
		if _, _, err := parseMain(b); err == nil {
			t.Errorf("parseMain(%q) accepted it", b)
		}
	}
	if _, _, err := parseMain(good); err != nil {
		t.Errorf("parseMain(good): %v", err)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	n := names{ns: DefaultNamespace}
	if got := n.main("aws", "prod/key"); got != "keychain-auth:aws/prod/key" {
		t.Errorf("main = %q", got)
	}
	// A "/" in the service must not make two items share a name.
	if a, b := n.main("a/b", "c"), n.main("a", "b/c"); a == b {
		t.Errorf("(a/b, c) and (a, b/c) share the name %q", a)
	}
	if a, b := n.main("a%2Fb", "c"), n.main("a/b", "c"); a == b {
		t.Errorf("escaped and literal service share the name %q", a)
	}
	if a, b := n.chunk("s", "a", "0123456789abcdef", 1), n.chunk("s", "a#0123456789abcdef.1", "0123456789abcdef", 1); a == b {
		t.Errorf("chunk names collide: %q", a)
	}
	if strings.HasPrefix(n.chunk("s", "t", "0123456789abcdef", 1), n.serviceBase("s")) {
		t.Error("a chunk name falls under its service's listing prefix")
	}
}

// TestLargeValueIsChunkedAndCleanedUp stores a 6,000-byte value, checks it
// took a main credential and two chunks, then that overwriting it with a
// short value and deleting it leave no credential behind.
func TestLargeValueIsChunkedAndCleanedUp(t *testing.T) {
	t.Parallel()
	v := newFakeVault()
	s := newStore(v, DefaultNamespace, nil)
	big := bytes.Repeat([]byte("0123456789"), 600)
	if err := s.Set(t.Context(), "svc", []backend.Item{{Target: "big", Value: big, Attributes: map[string]string{"k": "v"}}}); err != nil {
		t.Fatal(err)
	}
	if got := v.names(); len(got) != 3 || got[2] != "keychain-auth:svc/big" || !strings.HasPrefix(got[0], "keychain-auth#svc/big#") {
		t.Fatalf("credentials after a 6,000-byte write: %q, want two chunks and the main one", got)
	}
	it, err := s.Get(t.Context(), "svc", "big")
	if err != nil || !bytes.Equal(it.Value, big) || it.Attributes["k"] != "v" {
		t.Fatalf("Get: err %v, value equal %v, attrs %v", err, bytes.Equal(it.Value, big), it.Attributes)
	}
	if err := s.Set(t.Context(), "svc", []backend.Item{{Target: "big", Value: []byte("small")}}); err != nil {
		t.Fatal(err)
	}
	if got := v.names(); len(got) != 1 {
		t.Errorf("after overwriting with a short value: %q, want only the main credential", got)
	}
	if err := s.Set(t.Context(), "svc", []backend.Item{{Target: "big", Value: big}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "svc", []string{"big"}); err != nil {
		t.Fatal(err)
	}
	if got := v.names(); len(got) != 0 {
		t.Errorf("after Delete: %q left behind", got)
	}
}

// TestChunkWriteFailureRollsBack makes the vault refuse one chunk of the
// second item of a batch: the first item's old version must be back, and no
// chunk of the failed batch may remain.
func TestChunkWriteFailureRollsBack(t *testing.T) {
	t.Parallel()
	v := newFakeVault()
	s := newStore(v, DefaultNamespace, nil)
	ctx := t.Context()
	old := bytes.Repeat([]byte("o"), 3000)
	if err := s.Set(ctx, "svc", []backend.Item{{Target: "a", Value: old}}); err != nil {
		t.Fatal(err)
	}
	before := v.names()
	v.failWrite = "svc/b#"
	big := bytes.Repeat([]byte("n"), 6000)
	err := s.Set(ctx, "svc", []backend.Item{{Target: "a", Value: big}, {Target: "b", Value: big}})
	if err == nil {
		t.Fatal("Set succeeded although a chunk write failed")
	}
	v.failWrite = ""
	it, err := s.Get(ctx, "svc", "a")
	if err != nil || !bytes.Equal(it.Value, old) {
		t.Errorf("after the failed batch, a: err %v, old value back %v", err, err == nil && bytes.Equal(it.Value, old))
	}
	if _, err := s.Get(ctx, "svc", "b"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("after the failed batch, b: %v, want not found", err)
	}
	if after := v.names(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("credentials after the failed batch:\n%q\nwant as before:\n%q", after, before)
	}
}

// TestCaseFoldedNamesStayApart: Credential Manager folds case, so "Key" and
// "key" share a credential. The store must neither return one for the other
// nor let a write of one silently replace the other.
func TestCaseFoldedNamesStayApart(t *testing.T) {
	t.Parallel()
	s := newStore(newFakeVault(), DefaultNamespace, nil)
	ctx := t.Context()
	if err := s.Set(ctx, "svc", []backend.Item{{Target: "Key", Value: []byte("upper")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "svc", "key"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf(`Get("key") = %v, want not found while only "Key" exists`, err)
	}
	if _, err := s.Get(ctx, "SVC", "Key"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf(`Get in service "SVC" = %v, want not found`, err)
	}
	err := s.Set(ctx, "svc", []backend.Item{{Target: "key", Value: []byte("lower")}})
	if err == nil || !strings.Contains(err.Error(), "ignore case") {
		t.Errorf(`Set("key") = %v, want a refusal naming the case clash`, err)
	}
	if err := s.Delete(ctx, "svc", []string{"KEY"}); err != nil {
		t.Fatal(err)
	}
	if it, err := s.Get(ctx, "svc", "Key"); err != nil || string(it.Value) != "upper" {
		t.Errorf(`"Key" after deleting "KEY": err %v`, err)
	}
	items, err := s.List(ctx, "SVC", "", nil)
	if err != nil || len(items) != 0 {
		t.Errorf(`List("SVC") = %d items, %v; want none`, len(items), err)
	}
}

func TestOversizedRecordRefused(t *testing.T) {
	t.Parallel()
	s := newStore(newFakeVault(), DefaultNamespace, nil)
	err := s.Set(t.Context(), "svc", []backend.Item{{Target: "huge", Value: make([]byte, maxRecordSz)}})
	if err == nil || !strings.Contains(err.Error(), "chunk credentials can hold") {
		t.Errorf("Set of an item over the chunk limit = %v, want a refusal", err)
	}
}

// Two targets of one batch that differ only in case would share one
// credential: the batch is refused whole, writing nothing.
func TestCaseFoldedNamesInOneBatch(t *testing.T) {
	t.Parallel()
	v := newFakeVault()
	s := newStore(v, DefaultNamespace, nil)
	big := bytes.Repeat([]byte("x"), 3*MaxBlob) // chunked, so orphans would show
	err := s.Set(t.Context(), "svc", []backend.Item{{Target: "A", Value: big}, {Target: "a", Value: []byte("small")}})
	if err == nil || !strings.Contains(err.Error(), "ignore case") {
		t.Fatalf(`Set("A", "a") = %v, want a refusal naming the case clash`, err)
	}
	if n := v.names(); len(n) != 0 {
		t.Errorf("a refused batch left credentials behind: %q", n)
	}
}

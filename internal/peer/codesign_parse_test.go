package peer

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// codeDir builds a CodeDirectory blob of n bytes with the given hash type.
func codeDir(n int, hashType byte, fill byte) []byte {
	cd := bytes.Repeat([]byte{fill}, n)
	binary.BigEndian.PutUint32(cd, csMagicCodeDir)
	binary.BigEndian.PutUint32(cd[4:], uint32(n))
	cd[37] = hashType
	return cd
}

// superBlob lays out blobs under the given slot types.
func superBlob(types []uint32, blobs [][]byte) []byte {
	head := 12 + 8*len(blobs)
	out := make([]byte, head)
	binary.BigEndian.PutUint32(out, csMagicEmbedded)
	binary.BigEndian.PutUint32(out[8:], uint32(len(blobs)))
	for i, b := range blobs {
		binary.BigEndian.PutUint32(out[12+8*i:], types[i])
		binary.BigEndian.PutUint32(out[16+8*i:], uint32(len(out)))
		out = append(out, b...)
	}
	binary.BigEndian.PutUint32(out[4:], uint32(len(out)))
	return out
}

// machO builds a 64-bit Mach-O image: an LC_UUID, then LC_CODE_SIGNATURE
// pointing at sig, placed after some padding.
func machO(sig []byte) []byte {
	le := binary.LittleEndian
	var cmds []byte
	cmds = le.AppendUint32(cmds, 0x1b) // LC_UUID
	cmds = le.AppendUint32(cmds, 24)
	cmds = append(cmds, make([]byte, 16)...)
	sigOff := uint32(32 + 24 + 16 + 100)
	cmds = le.AppendUint32(cmds, lcCodeSignature)
	cmds = le.AppendUint32(cmds, 16)
	cmds = le.AppendUint32(cmds, sigOff)
	cmds = le.AppendUint32(cmds, uint32(len(sig)))
	hdr := le.AppendUint32(nil, machMagic64)
	hdr = le.AppendUint32(hdr, 0x0100000c) // CPU_TYPE_ARM64
	hdr = le.AppendUint32(hdr, 0)
	hdr = le.AppendUint32(hdr, 2) // MH_EXECUTE
	hdr = le.AppendUint32(hdr, 2)
	hdr = le.AppendUint32(hdr, uint32(len(cmds)))
	hdr = le.AppendUint32(hdr, 0)
	hdr = le.AppendUint32(hdr, 0)
	img := append(hdr, cmds...)
	img = append(img, make([]byte, int(sigOff)-len(img))...)
	return append(img, sig...)
}

func TestCDHashes(t *testing.T) {
	cd256 := codeDir(200, csHashTypeSHA256, 0x11)
	cd1 := codeDir(150, csHashTypeSHA1, 0x22)
	req := []byte{0xfa, 0xde, 0x0c, 0x01, 0, 0, 0, 12, 0, 0, 0, 0}
	sig := superBlob([]uint32{csSlotCodeDir, 2, csSlotAltCodeDir}, [][]byte{cd256, req, cd1})
	s256, s1 := sha256.Sum256(cd256), sha1.Sum(cd1)
	var want256, want1 [cdHashLen]byte
	copy(want256[:], s256[:])
	copy(want1[:], s1[:])

	img := machO(sig)
	for _, off := range []int{0, 4096} {
		file := append(bytes.Repeat([]byte{0xee}, off), img...)
		got, err := cdHashes(bytes.NewReader(file), int64(off), int64(len(file)))
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		if len(got) != 2 || got[0] != want256 || got[1] != want1 {
			t.Errorf("offset %d: cdhashes %x, want %x and %x", off, got, want256, want1)
		}
	}

	// The wrong slice offset is not a Mach-O image.
	if _, err := cdHashes(bytes.NewReader(append(make([]byte, 64), img...)), 0, int64(len(img)+64)); err == nil {
		t.Error("garbage before the image was parsed as Mach-O")
	}
	// A signature that claims to run past the end of the file is refused
	// before anything is allocated for it.
	if _, err := cdHashes(bytes.NewReader(img), 0, int64(len(img)-1)); err == nil {
		t.Error("a signature past the end of the file was accepted")
	}
	// No LC_CODE_SIGNATURE: errNoSignature.
	unsigned := machO(nil)
	binary.LittleEndian.PutUint32(unsigned[16:], 1) // only the LC_UUID
	if _, err := cdHashes(bytes.NewReader(unsigned), 0, int64(len(unsigned))); !errors.Is(err, errNoSignature) {
		t.Errorf("unsigned image: %v, want errNoSignature", err)
	}
}

func TestSuperBlobMalformed(t *testing.T) {
	good := superBlob([]uint32{csSlotCodeDir}, [][]byte{codeDir(100, csHashTypeSHA256, 1)})
	for name, sig := range map[string][]byte{
		"short":          good[:8],
		"wrong magic":    append([]byte{0, 0, 0, 0}, good[4:]...),
		"count too big":  func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[8:], 1<<30); return b }(),
		"cd past end":    func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[16:], uint32(len(b))); return b }(),
		"cd length lies": func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[24:], 1<<20); return b }(),
	} {
		if _, err := superBlobCDHashes(sig); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A CodeDirectory with an unknown hash type yields no cdhash at all.
	if _, err := superBlobCDHashes(superBlob([]uint32{csSlotCodeDir}, [][]byte{codeDir(100, 99, 1)})); !errors.Is(err, errNoSignature) {
		t.Errorf("unknown hash type: %v, want errNoSignature", err)
	}
}

func FuzzCDHashes(f *testing.F) {
	f.Add(machO(superBlob([]uint32{csSlotCodeDir}, [][]byte{codeDir(100, csHashTypeSHA256, 1)})))
	f.Add(machO(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		hashes, err := cdHashes(bytes.NewReader(b), 0, int64(len(b)))
		if err == nil && len(hashes) == 0 {
			t.Fatal("no error and no cdhash")
		}
	})
}

func TestCodeSigningTampering(t *testing.T) {
	for _, c := range []struct {
		flags    uint32
		tampered bool
	}{
		{csSigned | csValid, false},
		{0, false}, // unsigned: nothing to say
		{csSigned, true},
		{csSigned | csValid | csDebugged, true},
	} {
		if got := codeSigningTampering(c.flags) != ""; got != c.tampered {
			t.Errorf("flags %#x: tampered = %v, want %v", c.flags, got, c.tampered)
		}
	}
}

func TestChangedAfter(t *testing.T) {
	for _, c := range []struct {
		cs, cn, ss, su int64
		want           bool
	}{
		{100, 0, 100, 0, false},
		{99, 999999999, 100, 0, false},
		{100, 1000, 100, 1, false},
		{100, 1001, 100, 1, true},
		{101, 0, 100, 999999, true},
	} {
		if got := changedAfter(c.cs, c.cn, c.ss, c.su); got != c.want {
			t.Errorf("changedAfter(%d.%09d, %d.%06d) = %v", c.cs, c.cn, c.ss, c.su, got)
		}
	}
}

// A Mach-O header may claim load commands up to the file's size; on a
// sparse file that would have every connection allocate gigabytes before
// anything refused it.
func TestCDHashesCapsTheLoadCommands(t *testing.T) {
	hdr := make([]byte, 32)
	binary.LittleEndian.PutUint32(hdr[0:], machMagic64)
	binary.LittleEndian.PutUint32(hdr[16:], 1)     // ncmds
	binary.LittleEndian.PutUint32(hdr[20:], 1<<30) // sizeofcmds
	r := sparse{hdr: hdr, size: 2 << 30}
	if _, err := cdHashes(r, 0, r.size); err == nil || !strings.Contains(err.Error(), "load commands") {
		t.Errorf("cdHashes of a header claiming 1 GiB of load commands = %v; want it refused before reading", err)
	}
}

// sparse reads as hdr followed by zeros, up to size, without holding them.
type sparse struct {
	hdr  []byte
	size int64
}

func (s sparse) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > 64<<20 {
		panic("cdHashes asked to read more than 64 MiB at once")
	}
	n := 0
	for i := range p {
		o := off + int64(i)
		if o >= s.size {
			return n, io.EOF
		}
		if o < int64(len(s.hdr)) {
			p[i] = s.hdr[o]
		} else {
			p[i] = 0
		}
		n++
	}
	return n, nil
}

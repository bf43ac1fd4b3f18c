package secretservice

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"math/big"
	"testing"
)

// A mistyped digit in the RFC 2409 constant would almost surely make it
// composite; the group is a safe prime, so check both p and (p-1)/2.
func TestMODPGroupIsRFC2409SafePrime(t *testing.T) {
	p := modp1024()
	if p.BitLen() != 1024 {
		t.Fatalf("prime has %d bits, want 1024", p.BitLen())
	}
	if !p.ProbablyPrime(32) {
		t.Fatal("MODP constant is not prime")
	}
	q := new(big.Int).Rsh(new(big.Int).Sub(p, big.NewInt(1)), 1)
	if !q.ProbablyPrime(32) {
		t.Fatal("(p-1)/2 is not prime: not the RFC 2409 safe prime")
	}
}

func TestDHBothSidesDeriveTheSameKey(t *testing.T) {
	t.Parallel()
	for range 20 {
		a, err := newDHKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		b, err := newDHKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		if len(a.public) != dhGroupBytes {
			t.Fatalf("public key is %d bytes, want %d", len(a.public), dhGroupBytes)
		}
		ka, err := a.sharedKey(b.public)
		if err != nil {
			t.Fatal(err)
		}
		// The peer may send its value without leading zeros.
		kb, err := b.sharedKey(bytes.TrimLeft(a.public, "\x00"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ka) != aesKeyBytes || !bytes.Equal(ka, kb) {
			t.Fatal("the two sides derived different keys")
		}
		c, _ := newDHKeyPair()
		if kc, _ := a.sharedKey(c.public); bytes.Equal(ka, kc) {
			t.Fatal("different peers gave the same key")
		}
	}
}

func TestDHRejectsDegeneratePeerValues(t *testing.T) {
	t.Parallel()
	kp, err := newDHKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	p := modp1024()
	pMinus1 := new(big.Int).Sub(p, big.NewInt(1))
	for name, peer := range map[string][]byte{
		"empty":     nil,
		"zero":      {0},
		"one":       {1},
		"p-1":       pMinus1.Bytes(),
		"p":         p.Bytes(),
		"too long":  make([]byte, dhGroupBytes+1),
		"all ones":  bytes.Repeat([]byte{0xff}, dhGroupBytes),
		"one, padd": append(make([]byte, dhGroupBytes-1), 1),
	} {
		if _, err := kp.sharedKey(peer); err == nil {
			t.Errorf("%s: accepted a degenerate public value", name)
		}
	}
}

func TestAESCBCRoundTripAndPadding(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, aesKeyBytes)
	for n := range 3*aes.BlockSize + 2 {
		plain := bytes.Repeat([]byte{byte(n)}, n)
		iv, ct, err := encrypt(key, plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct)%aes.BlockSize != 0 || len(ct) <= n {
			t.Fatalf("%d bytes encrypted to %d: not PKCS#7 padded", n, len(ct))
		}
		if n >= 4 && bytes.Contains(ct, plain[:4]) {
			t.Fatalf("%d bytes: ciphertext contains the plaintext", n)
		}
		got, err := decrypt(key, iv, ct)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: round trip changed the value", n)
		}
	}
	iv1, ct1, _ := encrypt(key, []byte("same"))
	iv2, ct2, _ := encrypt(key, []byte("same"))
	if bytes.Equal(iv1, iv2) || bytes.Equal(ct1, ct2) {
		t.Fatal("two encryptions of one value share IV or ciphertext")
	}
}

func TestDecryptRejectsBadInput(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{9}, aesKeyBytes)
	iv, ct, err := encrypt(key, []byte("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() ([]byte, error){
		"short IV":        func() ([]byte, error) { return decrypt(key, iv[:8], ct) },
		"empty":           func() ([]byte, error) { return decrypt(key, iv, nil) },
		"not whole block": func() ([]byte, error) { return decrypt(key, iv, ct[:len(ct)-1]) },
		"pad byte 0": func() ([]byte, error) {
			return decrypt(key, iv, forgeLastBlock(t, key, iv, ct, 0))
		},
		"pad byte 17": func() ([]byte, error) {
			return decrypt(key, iv, forgeLastBlock(t, key, iv, ct, 17))
		},
	}
	for name, f := range cases {
		if _, err := f(); err == nil {
			t.Errorf("%s: decrypt accepted it", name)
		}
	}
}

// forgeLastBlock builds a two-block ciphertext under key and iv whose
// plaintext ends in byte b, i.e. carries a chosen (invalid) padding byte.
func forgeLastBlock(t *testing.T, key, iv, _ []byte, b byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte{'x'}, 2*aes.BlockSize)
	buf[len(buf)-1] = b
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	return buf
}

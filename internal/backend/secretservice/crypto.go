package secretservice

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
)

// Session algorithms of the Secret Service API.
const (
	AlgorithmDH    = "dh-ietf1024-sha256-aes128-cbc-pkcs7"
	AlgorithmPlain = "plain"
)

// modp1024Hex is the 1024-bit MODP group of RFC 2409 section 6.2 (the
// "Second Oakley Group"), which the dh-ietf1024 algorithm names; its generator
// is 2.
const modp1024Hex = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
	"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
	"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
	"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
	"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381" +
	"FFFFFFFFFFFFFFFF"

const (
	dhGroupBytes = 128 // 1024 bits
	aesKeyBytes  = 16
)

// errBadCiphertext hides why a value failed to decrypt: padding oracles are
// not a concern on a local bus, but the details say nothing useful to a user.
var errBadCiphertext = errors.New("secret from the service failed to decrypt (bad length or padding)")

func modp1024() *big.Int {
	p, ok := new(big.Int).SetString(modp1024Hex, 16)
	if !ok {
		panic("secretservice: bad MODP prime constant")
	}
	return p
}

// dhKeyPair is our half of the key exchange.
type dhKeyPair struct {
	p       *big.Int
	private *big.Int
	public  []byte // big-endian, left-padded to the group size
}

func newDHKeyPair() (*dhKeyPair, error) {
	p := modp1024()
	// x in [2, p-2]: x = 1 or p-1 would make the public value trivial.
	limit := new(big.Int).Sub(p, big.NewInt(3))
	x, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate session key: %w", err)
	}
	x.Add(x, big.NewInt(2))
	pub := new(big.Int).Exp(big.NewInt(2), x, p)
	return &dhKeyPair{p: p, private: x, public: pub.FillBytes(make([]byte, dhGroupBytes))}, nil
}

// sharedKey derives the AES-128 key from the service's public value: HKDF
// with SHA-256, no salt, no info, over the shared secret written big-endian
// and zero-padded to the group size. gnome-keyring and libsecret pad; a client
// that does not computes a different key whenever the secret's top byte is 0.
func (kp *dhKeyPair) sharedKey(peer []byte) ([]byte, error) {
	if len(peer) == 0 || len(peer) > dhGroupBytes {
		return nil, fmt.Errorf("service sent a %d-byte public key, want 1..%d", len(peer), dhGroupBytes)
	}
	y := new(big.Int).SetBytes(peer)
	pMinus1 := new(big.Int).Sub(kp.p, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pMinus1) >= 0 {
		return nil, errors.New("service sent a degenerate public key")
	}
	s := new(big.Int).Exp(y, kp.private, kp.p)
	ikm := s.FillBytes(make([]byte, dhGroupBytes))
	defer clear(ikm)
	key, err := hkdf.Key(sha256.New, ikm, nil, "", aesKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("derive session key: %w", err)
	}
	return key, nil
}

// encrypt returns a fresh IV and the AES-128-CBC/PKCS#7 ciphertext of plain.
// plain itself is not modified.
func encrypt(key, plain []byte) (iv, ct []byte, err error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	iv = make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, fmt.Errorf("generate IV: %w", err)
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	ct = make([]byte, len(plain)+pad)
	copy(ct, plain)
	for i := len(plain); i < len(ct); i++ {
		ct[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	return iv, ct, nil
}

// decrypt reverses encrypt and checks the padding. The returned slice is
// newly allocated; the caller owns it.
func decrypt(key, iv, ct []byte) ([]byte, error) {
	if len(iv) != aes.BlockSize || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errBadCiphertext
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(buf, ct)
	pad := int(buf[len(buf)-1])
	if pad == 0 || pad > aes.BlockSize {
		clear(buf)
		return nil, errBadCiphertext
	}
	for _, b := range buf[len(buf)-pad:] {
		if int(b) != pad {
			clear(buf)
			return nil, errBadCiphertext
		}
	}
	out := make([]byte, len(buf)-pad)
	copy(out, buf)
	clear(buf)
	return out, nil
}

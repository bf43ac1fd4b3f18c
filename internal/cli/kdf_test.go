package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func runDeriveKey(t *testing.T, stdin string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, noHarden: true}
	code := a.run(context.Background(), []string{"derive-key"})
	return out.String(), errb.String(), code
}

// derive-key gives exactly the key the file store would derive itself.
func TestDeriveKeyMatchesArgon2id(t *testing.T) {
	t.Parallel()
	req := kdfRequest{Passphrase: []byte("correct horse"), Salt: []byte("0123456789abcdef"), Time: 1, MemoryKiB: 64, Threads: 2}
	in, _ := json.Marshal(req)
	out, errOut, code := runDeriveKey(t, string(in))
	if code != 0 {
		t.Fatalf("derive-key: exit %d: %s", code, errOut)
	}
	want := hex.EncodeToString(argon2.IDKey(req.Passphrase, req.Salt, 1, 64, 2, 32))
	if strings.TrimSpace(out) != want {
		t.Errorf("derive-key printed %q, want %q", out, want)
	}
	if strings.Contains(out+errOut, "correct horse") {
		t.Error("the passphrase was echoed")
	}
}

func TestDeriveKeyRefusesBadRequests(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"not JSON":             "correct horse",
		"hostile memory":       `{"passphrase":"eA==","salt":"eA==","time":1,"memory_kib":4294967295,"threads":1}`,
		"zero threads":         `{"passphrase":"eA==","salt":"eA==","time":1,"memory_kib":64,"threads":0}`,
		"over the request cap": `{"passphrase":"` + strings.Repeat("A", 2<<20) + `"}`,
	} {
		out, errOut, code := runDeriveKey(t, in)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "keychain-auth: derive-key") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and a derive-key error", name, code, out, errOut)
		}
	}
}

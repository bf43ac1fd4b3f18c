package launchd

import (
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedPlistIsTheDefaultAgent(t *testing.T) {
	if got := Agent(Options{}); got != Shipped {
		t.Errorf("com.the-17.keychain-auth.plist differs from Agent(Options{}); regenerate it:\n%s", got)
	}
}

// plistStrings decodes the plist as XML and returns every <key> and
// <string> text in order, proving it is well-formed and escaped.
func plistStrings(t *testing.T, doc string) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	var out []string
	var in string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("plist is not well-formed XML: %v\n%s", err, doc)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			in = x.Name.Local
		case xml.CharData:
			if in == "key" || in == "string" {
				out = append(out, string(x))
			}
		case xml.EndElement:
			in = ""
		}
	}
}

func TestAgentWithOptions(t *testing.T) {
	doc := Agent(Options{
		Binary:  "/Users/a&b/bin/keychain-auth",
		LogFile: "/Users/a&b/Library/Logs/keychain-auth/daemon.log",
		Env:     map[string]string{"TMPDIR": "/var/folders/x/T/", "XDG_CONFIG_HOME": "/Users/a&b/<cfg>"},
	})
	got := strings.Join(plistStrings(t, doc), "|")
	for _, want := range []string{
		"ProgramArguments|/Users/a&b/bin/keychain-auth|start|--log-format|json",
		"EnvironmentVariables|TMPDIR|/var/folders/x/T/|XDG_CONFIG_HOME|/Users/a&b/<cfg>",
		"StandardErrorPath|/Users/a&b/Library/Logs/keychain-auth/daemon.log",
		"Label|" + Label,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plist lacks %q:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "a&b") {
		t.Error("& not escaped")
	}
}

// TestPlutilAcceptsAgent runs Apple's plist checker where it exists (macOS).
func TestPlutilAcceptsAgent(t *testing.T) {
	plutil, err := exec.LookPath("plutil")
	if err != nil {
		// Correct under CI too: plutil is Apple's and exists only on macOS;
		// elsewhere the tests above check the plist as XML.
		t.Skip("SKIPPED: plutil not found (not macOS); the plist is checked as XML only")
	}
	p := filepath.Join(t.TempDir(), "agent.plist")
	doc := Agent(Options{LogFile: "/tmp/x.log", Env: map[string]string{"A": "b"}})
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(plutil, "-lint", p).CombinedOutput(); err != nil {
		t.Errorf("plutil -lint: %v: %s", err, out)
	}
}

package cli

import (
	"strings"
	"testing"
)

func TestWindowsQuote(t *testing.T) {
	for in, want := range map[string]string{
		`C:\bin\keychain-auth.exe`:              `C:\bin\keychain-auth.exe`,
		`C:\Program Files\ka\keychain-auth.exe`: `"C:\Program Files\ka\keychain-auth.exe"`,
		`a "quoted" word`:                       `"a \"quoted\" word"`,
		`C:\dir with space\`:                    `"C:\dir with space\\"`,
		``:                                      `""`,
		`"C:\Program Files\ka\keychain-auth.exe" start`: `"\"C:\Program Files\ka\keychain-auth.exe\" start"`,
	} {
		if got := windowsQuote(in); got != want {
			t.Errorf("windowsQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLogonTaskArgs(t *testing.T) {
	args := logonTaskArgs(`C:\Program Files\ka\keychain-auth.exe`)
	line := windowsCommandLine(append([]string{"schtasks"}, args...)...)
	want := `schtasks /Create /F /TN keychain-auth /SC ONLOGON /IT /RL LIMITED /TR "\"C:\Program Files\ka\keychain-auth.exe\" start"`
	if line != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	if strings.Contains(line, "HIGHEST") {
		t.Error("the task must never run elevated")
	}
}

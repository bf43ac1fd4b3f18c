package cli

import "strings"

// logonTaskName is the Task Scheduler task install-service creates on Windows.
const logonTaskName = "keychain-auth"

// logonTaskArgs are schtasks' arguments for a task that starts the daemon
// when the user logs on: as that user, interactive only, with the user's
// limited token (never elevated), replacing a task of the same name.
func logonTaskArgs(exe string) []string {
	return []string{"/Create", "/F", "/TN", logonTaskName, "/SC", "ONLOGON", "/IT", "/RL", "LIMITED",
		"/TR", windowsQuote(exe) + " start"}
}

// windowsQuote quotes one argument the way CommandLineToArgvW reads it back:
// inside double quotes, backslashes are literal except before a quote.
func windowsQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for _, r := range s {
		switch r {
		case '\\':
			slashes++
			continue
		case '"':
			b.WriteString(strings.Repeat(`\`, 2*slashes+1))
		default:
			b.WriteString(strings.Repeat(`\`, slashes))
		}
		slashes = 0
		b.WriteRune(r)
	}
	b.WriteString(strings.Repeat(`\`, 2*slashes))
	b.WriteByte('"')
	return b.String()
}

// windowsCommandLine is args as one command line, for printing.
func windowsCommandLine(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = windowsQuote(a)
	}
	return strings.Join(q, " ")
}

// Package launchd ships the macOS user agent that runs the daemon, and
// builds the variant `keychain-auth install-service` writes: the same
// agent with the installed binary's path, a log file and the environment
// the daemon needs to find the same files as the user's shell.
package launchd

import (
	_ "embed"
	"encoding/xml"
	"maps"
	"slices"
	"strings"
)

// Label is the agent's launchd label and the plist's base name.
const Label = "com.the-17.keychain-auth"

// DefaultBinary is the daemon's path in the shipped plist.
const DefaultBinary = "/usr/local/bin/keychain-auth"

// Shipped is com.the-17.keychain-auth.plist as kept in this directory:
// Agent(Options{}) produces exactly this text.
//
//go:embed com.the-17.keychain-auth.plist
var Shipped string

// Options say what differs from the shipped agent.
type Options struct {
	Binary string // default DefaultBinary
	// LogFile receives the daemon's stderr (its log); none when empty.
	LogFile string
	// Env is set in the daemon's environment.
	Env map[string]string
}

// Agent returns the plist of the user agent. The daemon is started at
// login (RunAtLoad), restarted when it fails but not after a clean stop
// (KeepAlive/SuccessfulExit false), and given 30 s to stop on SIGTERM.
func Agent(o Options) string {
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
`)
	key := func(k string) { b.WriteString("\t<key>" + esc(k) + "</key>\n") }
	str := func(indent, s string) { b.WriteString(indent + "<string>" + esc(s) + "</string>\n") }
	key("Label")
	str("\t", Label)
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	for _, a := range []string{o.Binary, "start", "--log-format", "json"} {
		str("\t\t", a)
	}
	b.WriteString("\t</array>\n")
	if len(o.Env) > 0 {
		key("EnvironmentVariables")
		b.WriteString("\t<dict>\n")
		for _, k := range slices.Sorted(maps.Keys(o.Env)) {
			b.WriteString("\t\t<key>" + esc(k) + "</key>\n")
			str("\t\t", o.Env[k])
		}
		b.WriteString("\t</dict>\n")
	}
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	key("KeepAlive")
	b.WriteString("\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>\n")
	key("ProcessType")
	str("\t", "Background")
	key("ExitTimeOut")
	b.WriteString("\t<integer>30</integer>\n")
	if o.LogFile != "" {
		key("StandardErrorPath")
		str("\t", o.LogFile)
	}
	b.WriteString("</dict>\n</plist>\n")
	return b.String()
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

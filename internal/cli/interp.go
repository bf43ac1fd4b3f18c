package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
)

// interpreterName matches executables that run code they are given: their
// hash identifies the interpreter, not the script, so approving one approves
// every script run with it.
var interpreterName = regexp.MustCompile(`^(python[0-9.]*|pypy[0-9.]*|node(js)?|ruby[0-9.]*|perl[0-9.]*|php[0-9.]*(-cgi|-fpm)?|` +
	`java|javaw|jshell|bash|sh|dash|zsh|fish|ksh|mksh|csh|tcsh|ash|busybox|deno|bun|lua(jit)?[0-9.]*|` +
	`tclsh[0-9.]*|wish[0-9.]*|rscript|r|osascript|pwsh|powershell|awk|gawk|mawk|nawk|guile[0-9.]*|` +
	`racket|sbcl|erl|escript|elixir|julia|groovy|scala|kotlin|swift|dotnet|env|xargs|gdb)$`)

// isInterpreter reports whether the file name names an interpreter.
func isInterpreter(path string) bool {
	name := strings.ToLower(filepath.Base(path))
	name = strings.TrimSuffix(name, ".exe")
	return interpreterName.MatchString(name)
}

// checkInterpreter refuses interpreters unless allowed, and explains.
func checkInterpreter(w io.Writer, names []string, allow bool) error {
	for _, n := range names {
		if !isInterpreter(n) {
			continue
		}
		if !allow {
			return fmt.Errorf("%s is an interpreter: its hash covers every script it runs, so approving it lets any script "+
				"run with it use these secrets; register the program itself (a compiled binary), or pass --allow-interpreter "+
				"if you accept that", filepath.Base(n))
		}
		fmt.Fprintf(w, "warning: registering interpreter %s: ANY script run with it gets these privileges\n", filepath.Base(n))
		return nil
	}
	return nil
}

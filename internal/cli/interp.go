package cli

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/The-17/keychain-auth/internal/attest"
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

// usualInterpreterDirs are searched for known interpreters besides $PATH, so
// that a renamed copy is recognised even when the caller's PATH is short.
var usualInterpreterDirs = []string{
	"/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin",
	"/opt/homebrew/bin", "/opt/local/bin", "/snap/bin",
}

// interpreterDirs is $PATH followed by usualInterpreterDirs, without repeats.
func (a *app) interpreterDirs() []string {
	var dirs []string
	for _, d := range append(filepath.SplitList(a.getenv("PATH")), usualInterpreterDirs...) {
		if filepath.IsAbs(d) && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Markers in an ELF file that make it an interpreter whatever it is called:
// a dependency on an interpreter's library, or an interpreter's entry point
// exported for its extension modules (statically linked builds).
var (
	interpreterLibs = []struct{ prefix, lang string }{
		{"libpython", "Python"}, {"libnode", "Node.js"}, {"libruby", "Ruby"}, {"libperl", "Perl"},
		{"libphp", "PHP"}, {"libjli", "Java"}, {"libjvm", "Java"}, {"liblua", "Lua"}, {"libluajit", "LuaJIT"},
		{"libtcl", "Tcl"}, {"libguile", "Guile"}, {"libjulia", "Julia"}, {"libmono", "Mono"},
	}
	interpreterSymbols = map[string]string{
		"Py_BytesMain": "Python", "Py_Main": "Python", "Py_RunMain": "Python",
		"perl_run": "Perl", "perl_parse": "Perl",
		"ruby_run_node": "Ruby", "ruby_options": "Ruby",
		"napi_module_register": "Node.js, Deno or Bun", "napi_create_object": "Node.js, Deno or Bun",
		"php_execute_script": "PHP", "zend_eval_string": "PHP",
		"luaL_loadfilex": "Lua", "luaL_loadfile": "Lua",
		"Tcl_Main": "Tcl", "JLI_Launch": "Java",
		"parse_and_execute": "bash", "zsh_main": "zsh",
	}
)

// scriptError: the file is a #! script. The kernel runs its interpreter, and
// the daemon sees (and hashes) that interpreter, never the script.
type scriptError struct {
	path, shebang string
}

func (e *scriptError) Error() string {
	return fmt.Sprintf("%s is a script (%s): when it runs, the kernel reports its interpreter as the process, never the script, "+
		"so the daemon would see the interpreter's hash and this registration could never match; "+
		"register a compiled program instead, or, if you accept that every script the interpreter runs gets these privileges, "+
		"register the interpreter itself with --allow-interpreter", e.path, e.shebang)
}

// shebang returns the #! line of the file at path, or "" if it has none.
func shebang(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if !strings.HasPrefix(line, "#!") {
		return "", nil
	}
	line = strings.TrimSpace(printable(strings.TrimRight(line, "\r\n")))
	if len(line) > 120 {
		line = line[:120] + "..."
	}
	return line, nil
}

// interpreterCheck is what the guard looks at: the names the binary goes by,
// and, when known, the file and its hash.
type interpreterCheck struct {
	names []string // as given, resolved, or recorded by the daemon
	file  string   // the file whose content to examine; "" if none
	hash  string   // its sha256:<hex> identity; "" if unknown
	dirs  []string // where known interpreters are searched
}

// identify says why the binary is an interpreter, or "" if nothing says so.
// A #! script is an error of its own (*scriptError).
func (c interpreterCheck) identify() (string, error) {
	if c.file != "" {
		line, err := shebang(c.file)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", c.file, unwrapPathErr(err))
		}
		if line != "" {
			return "", &scriptError{path: c.file, shebang: line}
		}
	}
	for _, n := range c.names {
		if isInterpreter(n) {
			return "by its name", nil
		}
	}
	if c.file == "" {
		return "", nil
	}
	if why := elfInterpreter(c.file); why != "" {
		return why, nil
	}
	if c.hash != "" {
		if twin := sameAsKnownInterpreter(c.file, c.hash, c.dirs); twin != "" {
			return "the same file as " + twin, nil
		}
	}
	return "", nil
}

// elfInterpreter looks for interpreterLibs and interpreterSymbols in an ELF
// file. Anything that is not a readable ELF file says nothing.
func elfInterpreter(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if libs, err := f.ImportedLibraries(); err == nil {
		for _, lib := range libs {
			for _, m := range interpreterLibs {
				if strings.HasPrefix(lib, m.prefix) {
					return fmt.Sprintf("it embeds %s: it links %s", m.lang, lib)
				}
			}
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return ""
	}
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		if lang, ok := interpreterSymbols[s.Name]; ok {
			return fmt.Sprintf("it embeds %s: it exports %s", lang, s.Name)
		}
	}
	return ""
}

// sameAsKnownInterpreter returns the interpreter in dirs (found by its name)
// whose content is the file's, or "". Only files of the same size are hashed,
// which keeps this to a few stat calls in the common case.
func sameAsKnownInterpreter(path, hash string, dirs []string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, ent := range entries {
			if !isInterpreter(ent.Name()) {
				continue
			}
			cand, err := filepath.EvalSymlinks(filepath.Join(dir, ent.Name()))
			if err != nil || seen[cand] {
				continue
			}
			seen[cand] = true
			cfi, err := os.Stat(cand)
			if err != nil || !cfi.Mode().IsRegular() || cfi.Size() != fi.Size() {
				continue
			}
			if h, err := fileHash(cand); err == nil && h == hash {
				return cand
			}
		}
	}
	return ""
}

func fileHash(path string) (string, error) {
	// HashPath refuses anything but a regular file before opening it: a
	// path from pending.json may name a FIFO, whose open would block.
	id, err := attest.New(attest.Options{}).HashPath(context.Background(), path)
	return id.Hash, err
}

// checkInterpreter refuses interpreters unless allowed, and explains. A #!
// script is refused even with allow: registering it could never work.
func checkInterpreter(w io.Writer, c interpreterCheck, allow bool) error {
	why, err := c.identify()
	if err != nil {
		return err
	}
	if why == "" {
		return nil
	}
	name := filepath.Base(c.names[0])
	if why != "by its name" {
		name += " (" + why + ")"
	}
	if !allow {
		return fmt.Errorf("%s is an interpreter: its hash covers every script it runs, so approving it lets any script "+
			"run with it use these secrets; register the program itself (a compiled binary), or pass --allow-interpreter "+
			"if you accept that", name)
	}
	fmt.Fprintf(w, "warning: registering interpreter %s: ANY script run with it gets these privileges\n", name)
	return nil
}

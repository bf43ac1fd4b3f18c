package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spf13/cobra/doc"
)

// WriteManPages writes one man page (section 1) per command into dir:
// keychain-auth.1, keychain-auth-start.1, ... generated from the commands'
// help, so the pages never drift from --help. date fixes the pages' date,
// so that a release rebuild produces the same files.
func WriteManPages(dir string, date time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: func(string) string { return "" }, uid: os.Getuid()}
	root := a.rootCmd()
	root.DisableAutoGenTag = true
	// Cobra adds `completion` only when executing; its pages say how to
	// load the completion scripts.
	root.InitDefaultCompletionCmd()
	escapeForMarkdown(root)
	hdr := &doc.GenManHeader{
		Title:   "KEYCHAIN-AUTH",
		Section: "1",
		Source:  "keychain-auth " + version(),
		Manual:  "keychain-auth manual",
		Date:    &date,
	}
	if err := doc.GenManTree(root, hdr, dir); err != nil {
		return fmt.Errorf("write man pages to %s: %w", dir, err)
	}
	return nil
}

// escapeForMarkdown protects the help's <path>, <hash> and the like: the man
// page generator reads the help as Markdown, where they are HTML tags and
// vanish.
func escapeForMarkdown(c *cobra.Command) {
	esc := strings.NewReplacer("<", `\<`, ">", `\>`)
	c.Use = esc.Replace(c.Use)
	c.Short = esc.Replace(c.Short)
	c.Long = esc.Replace(c.Long)
	c.Example = esc.Replace(c.Example)
	c.LocalFlags().VisitAll(func(f *pflag.Flag) { f.Usage = esc.Replace(f.Usage) })
	for _, sub := range c.Commands() {
		escapeForMarkdown(sub)
	}
}

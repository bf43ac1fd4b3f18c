// Command mangen writes keychain-auth's man pages, generated from the
// commands' help: go run ./internal/cli/mangen <dir>. The release
// configuration (.goreleaser.yaml) runs it and packages the pages. The
// pages' date is $SOURCE_DATE_EPOCH when set, so rebuilds are reproducible.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/The-17/keychain-auth/internal/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/cli/mangen <dir>")
		os.Exit(2)
	}
	date := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mangen: SOURCE_DATE_EPOCH is not a number of seconds:", s)
			os.Exit(2)
		}
		date = time.Unix(sec, 0).UTC()
	}
	if err := cli.WriteManPages(os.Args[1], date); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}

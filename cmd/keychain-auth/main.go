// Command keychain-auth is the daemon and its admin CLI; see internal/cli.
package main

import (
	"os"

	"github.com/The-17/keychain-auth/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args))
}

// Command readsecret prints one secret from the keychain-auth daemon, as an
// example of the Go client SDK:
//
//	go build -o readsecret ./examples/readsecret
//	keychain-auth register ./readsecret --read aws
//	./readsecret aws access-key
//
// The value goes to stdout followed by a newline; errors go to stderr and the
// exit status is 1 (2 for a usage error).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/The-17/keychain-auth/client"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: readsecret <service> <target>")
		return 2
	}
	service, target := args[0], args[1]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.WithEnv(getenv))
	if err != nil {
		fmt.Fprintln(stderr, "readsecret:", err)
		return 1
	}
	defer c.Close()

	// RequireAll turns an absent target into an error instead of an empty
	// answer, which is what a one-secret tool wants.
	res, err := c.Read(ctx, service, []string{target}, client.RequireAll())
	if err != nil {
		fmt.Fprintln(stderr, "readsecret:", err)
		if errors.Is(err, client.ErrUnregistered) {
			if exe, exeErr := os.Executable(); exeErr == nil {
				fmt.Fprintf(stderr, "readsecret: to allow it: keychain-auth register %s --read %s\n", exe, service)
			}
		}
		return 1
	}
	fmt.Fprintln(stdout, res.Values[target])
	return 0
}

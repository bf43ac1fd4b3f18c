// Command kaenv is the program `keychain-auth exec` runs in the e2e tests.
//
//	kaenv env NAME...
//
// prints "variant=<v>", then "NAME=<value>" or "NAME unset" for each NAME,
// then "cmdline=" and its own /proc/self/cmdline with NULs as spaces.
//
//	kaenv exit <code>
//
// exits with code.
//
//	kaenv sendfd <socket> <program> <service> <target>
//
// is a client that is not keychain-auth but sends a descriptor request: it
// opens program and asks, through the SDK, for target of service on its
// behalf, then prints "ok" or "refused <reason>".
//
// Its build-time variant changes the binary's hash, not its behaviour.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/The-17/keychain-auth/client"
)

var variant = "0"

func main() {
	if len(os.Args) < 2 {
		fail("usage: kaenv env NAME... | kaenv exit <code> | kaenv sendfd <socket> <program> <service> <target>")
	}
	switch os.Args[1] {
	case "env":
		fmt.Printf("variant=%s\n", variant)
		for _, n := range os.Args[2:] {
			if v, ok := os.LookupEnv(n); ok {
				fmt.Printf("%s=%s\n", n, v)
			} else {
				fmt.Printf("%s unset\n", n)
			}
		}
		b, err := os.ReadFile("/proc/self/cmdline")
		if err != nil {
			fail(err.Error())
		}
		fmt.Printf("cmdline=%s\n", strings.ReplaceAll(string(b), "\x00", " "))
	case "exit":
		code, _ := strconv.Atoi(os.Args[2])
		os.Exit(code)
	case "sendfd":
		sendFD(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func sendFD(socket, program, service, target string) {
	ctx := context.Background()
	f, err := os.Open(program)
	if err != nil {
		fail(err.Error())
	}
	defer f.Close()
	c, err := client.Dial(ctx, client.WithSocket(socket))
	if err != nil {
		fail(err.Error())
	}
	defer c.Close()
	res, err := c.ExecRead(ctx, f, []string{program}, service, []string{target}, false)
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		fmt.Printf("refused %s\n", ce.Reason)
	case err != nil:
		fail(err.Error())
	default:
		fmt.Printf("ok %d\n", len(res.Items))
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "kaenv:", msg)
	os.Exit(2)
}

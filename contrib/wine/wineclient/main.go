// Command wineclient drives the daemon through the Go client SDK for the
// Windows end-to-end run under Wine (.ci/wine.sh):
//
//	wineclient write <service> <target> <size>   store a value of size bytes
//	wineclient read <service> <target> <size>    check the value round-tripped
//	wineclient denied <service> <target>         expect an unregistered refusal
//
// Values are generated from the target, so a read can check one without the
// script ever holding it; only lengths and verdicts are printed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/The-17/keychain-auth/client"
)

// variant is set at build time (-X main.variant=...) to make a second binary
// with another hash: the unregistered client.
var variant = "a"

func value(target string, size int) string {
	var sb strings.Builder
	for i := 0; sb.Len() < size; i++ {
		sb.WriteString(strconv.Itoa(i))
		sb.WriteString(target)
	}
	return sb.String()[:size]
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wineclient:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return errors.New("usage: wineclient write|read|denied <service> <target> [size] (variant " + variant + ")")
	}
	op, service, target := args[0], args[1], args[2]
	size := 0
	if len(args) > 3 {
		n, err := strconv.Atoi(args[3])
		if err != nil {
			return err
		}
		size = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	switch op {
	case "write":
		if err := c.Write(ctx, service, map[string]string{target: value(target, size)}, map[string]string{"origin": "wine"}); err != nil {
			return err
		}
		fmt.Printf("wrote %d bytes\n", size)
	case "read":
		res, err := c.Read(ctx, service, []string{target}, client.RequireAll())
		if err != nil {
			return err
		}
		if got := res.Values[target]; got != value(target, size) {
			return fmt.Errorf("read %d bytes that differ from the %d written", len(got), size)
		}
		fmt.Printf("read %d bytes, as written\n", size)
	case "denied":
		_, err := c.Read(ctx, service, []string{target})
		if !errors.Is(err, client.ErrUnregistered) {
			return fmt.Errorf("want an unregistered refusal, got %v", err)
		}
		fmt.Println("denied as unregistered")
	default:
		return fmt.Errorf("unknown operation %q", op)
	}
	return nil
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/The-17/keychain-auth/client"
)

// startExampleDaemon stands in for `keychain-auth start` so the examples can
// run: a fake daemon holding aws/access-key.
func startExampleDaemon() (socket string, stop func()) {
	dir, err := os.MkdirTemp("", "kca-example")
	if err != nil {
		log.Fatal(err)
	}
	f, stopFake, err := startFake(dir)
	if err != nil {
		log.Fatal(err)
	}
	f.put("aws", "access-key", "AKIA-not-a-real-key", map[string]string{"env": "prod"})
	return f.path, func() {
		stopFake()
		os.RemoveAll(dir)
	}
}

// Dial finds the daemon's socket the way every keychain-auth client does;
// the program must have been registered with `keychain-auth register`.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.Read(ctx, "aws", []string{"access-key"}, client.RequireAll())
	if err != nil {
		log.Fatal(err)
	}
	useKey(res.Values["access-key"])
}

func useKey(string) {}

func ExampleClient_Read() {
	socket, stop := startExampleDaemon()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.WithSocket(socket))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Read(ctx, "aws", []string{"access-key", "session-token"})
	if err != nil {
		log.Fatal(err)
	}
	key := res.Values["access-key"]
	fmt.Println("access-key found:", key != "")
	fmt.Println("missing:", res.Missing)
	// Output:
	// access-key found: true
	// missing: [session-token]
}

func ExampleClient_Search() {
	socket, stop := startExampleDaemon()
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, client.WithSocket(socket))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	items, err := c.Search(ctx, "aws", "", map[string]string{"env": "prod"})
	if err != nil {
		log.Fatal(err)
	}
	for _, it := range items {
		fmt.Println(it.Target, it.Attributes["env"])
	}
	// Output:
	// access-key prod
}

// Denials and missing targets come back as *client.Error; errors.Is sorts
// them without comparing reason strings.
func ExampleError() {
	socket, stop := startExampleDaemon()
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, client.WithSocket(socket))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Read(ctx, "forbidden", []string{"anything"})
	fmt.Println("denied:", errors.Is(err, client.ErrDenied))

	_, err = c.Read(ctx, "aws", []string{"access-key", "session-token"}, client.RequireAll())
	var e *client.Error
	if errors.Is(err, client.ErrNotFound) && errors.As(err, &e) {
		fmt.Println("not found:", e.Missing)
	}
	// Output:
	// denied: true
	// not found: [session-token]
}

func ExampleClient_Check() {
	socket, stop := startExampleDaemon()
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, client.WithSocket(socket))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	me, err := c.Check(ctx)
	if errors.Is(err, client.ErrUnregistered) {
		log.Fatal("register this program first: keychain-auth register <path>")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println("read:", me.ReadServices, "write:", me.WriteServices, "search:", me.CanSearch)
	// Output:
	// read: [aws db-*] write: [] search: true
}

package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/The-17/keychain-auth/protocol"
)

// serveOne answers every request on one connection with the response reply
// builds; it stands in for the daemon, which has its own end-to-end tests.
func serveOne(t *testing.T, reply func(*protocol.Request) *protocol.Response) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kca")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := protocol.NewReader(c)
		for {
			line, err := r.Next()
			if err != nil {
				return
			}
			req, err := protocol.DecodeRequest(line)
			if err != nil {
				return
			}
			if protocol.WriteResponse(c, reply(req)) != nil {
				return
			}
		}
	}()
	return path
}

func envWithSocket(path string) func(string) string {
	return func(k string) string {
		if k == "KEYCHAIN_AUTH_SOCKET" {
			return path
		}
		return ""
	}
}

func TestPrintsValue(t *testing.T) {
	t.Parallel()
	sock := serveOne(t, func(req *protocol.Request) *protocol.Response {
		if req.Action != protocol.ActionRead || req.Service != "aws" || len(req.Targets) != 1 || req.Targets[0] != "key" || !req.RequireAll {
			return protocol.Failure(req.ID, protocol.ReasonMalformedRequest, "unexpected request")
		}
		v := "v1"
		return protocol.Success(req.ID, []protocol.Result{{Target: "key", Value: &v}})
	})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"aws", "key"}, envWithSocket(sock), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if stdout.String() != "v1\n" || stderr.Len() != 0 {
		t.Errorf("stdout %d bytes, stderr %q; want the value and a newline", stdout.Len(), stderr.String())
	}
}

func TestMissingTargetFails(t *testing.T) {
	t.Parallel()
	sock := serveOne(t, func(req *protocol.Request) *protocol.Response {
		resp := protocol.Failure(req.ID, protocol.ReasonNotFound, "nothing was read")
		resp.Missing = req.Targets
		return resp
	})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"aws", "key"}, envWithSocket(sock), &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "not_found") || !strings.Contains(stderr.String(), "key") {
		t.Errorf("stdout %d bytes, stderr %q; want nothing on stdout and not_found naming key", stdout.Len(), stderr.String())
	}
}

func TestUnregisteredSaysHowToRegister(t *testing.T) {
	t.Parallel()
	sock := serveOne(t, func(req *protocol.Request) *protocol.Response {
		return protocol.Failure(req.ID, protocol.ReasonUnregisteredBinary, "binary not registered")
	})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"aws", "key"}, envWithSocket(sock), &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "keychain-auth register ") || !strings.Contains(stderr.String(), "--read aws") {
		t.Errorf("stderr %q does not say how to register", stderr.String())
	}
}

func TestNoDaemon(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	sock := filepath.Join(t.TempDir(), "agent.sock")
	if code := run([]string{"aws", "key"}, envWithSocket(sock), &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.HasPrefix(stderr.String(), "readsecret: ") || !strings.Contains(stderr.String(), sock) {
		t.Errorf("stderr %q does not name the socket", stderr.String())
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"aws"}, envWithSocket("/nonexistent"), &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "usage: readsecret <service> <target>") {
		t.Errorf("stderr %q", stderr.String())
	}
}

package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/The-17/keychain-auth/internal/attest"
	"golang.org/x/sys/unix"
)

// fdReader reads a Unix socket with recvmsg, so that a descriptor sent with
// a request (SCM_RIGHTS) reaches the inbox instead of being dropped.
type fdReader struct {
	uc    *net.UnixConn
	inbox *fdInbox
	oob   []byte
}

// maxFDsPerRead is how many descriptors one read can carry before the
// kernel truncates (and closes) the rest; more than one is refused anyway.
const maxFDsPerRead = 4

// requestReader returns what the session reads its requests from.
func requestReader(nc net.Conn, inbox *fdInbox) io.Reader {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return nc
	}
	return &fdReader{uc: uc, inbox: inbox, oob: make([]byte, unix.CmsgSpace(4*maxFDsPerRead))}
}

func (r *fdReader) Read(p []byte) (int, error) {
	// The standard library asks for MSG_CMSG_CLOEXEC, so a received
	// descriptor never leaks into a child of the daemon.
	n, oobn, flags, _, err := r.uc.ReadMsgUnix(p, r.oob)
	if oobn > 0 {
		r.collect(r.oob[:oobn])
	}
	if flags&unix.MSG_CTRUNC != 0 {
		r.inbox.extra = true
	}
	if n < 0 {
		// recvmsg's -1 on error; io.Reader wants 0.
		n = 0
	}
	return n, err
}

func (r *fdReader) collect(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		r.inbox.extra = true
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			r.inbox.extra = true
			continue
		}
		for _, fd := range fds {
			if r.inbox.fd < 0 && !r.inbox.extra {
				r.inbox.fd = fd
				continue
			}
			unix.Close(fd)
			r.inbox.extra = true
		}
	}
}

func closeFD(fd int) { unix.Close(fd) }

// descriptorPath is the kernel's name for the file behind f, which the CLI
// opened by path; "(deleted)" is appended when it was removed or renamed
// over since.
func descriptorPath(f *os.File) string {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return ""
	}
	return p
}

// SelfHash is the identity of the daemon's own executable, read through
// /proc/self/exe: the binary allowed to send descriptor requests.
func SelfHash(ctx context.Context, a *attest.Attestor) (string, error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", fmt.Errorf("open the daemon's own executable: %w", err)
	}
	defer f.Close()
	id, err := a.Hash(ctx, f)
	if err != nil {
		return "", fmt.Errorf("hash the daemon's own executable: %w", err)
	}
	return id.Hash, nil
}

package client

import (
	"context"
	"fmt"
	"net"

	"github.com/The-17/keychain-auth/internal/paths"
	"github.com/The-17/keychain-auth/internal/pipe"
)

// systemSID is LocalSystem, the account a machine-wide service runs as.
const systemSID = "S-1-5-18"

// dialSocket connects to the daemon's named pipe and checks that the process
// serving it runs as this user (or SYSTEM): the pipe namespace is shared by
// every user of the machine, so a name alone proves nothing. The handle is
// not inherited by child processes.
func dialSocket(ctx context.Context, name string) (net.Conn, error) {
	c, err := pipe.Dial(ctx, name)
	if err != nil {
		return nil, err
	}
	me, err := paths.CurrentSID()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("keychain-auth: cannot read this process's user SID: %w", err)
	}
	sid, err := c.ServerSID()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("keychain-auth: cannot tell who serves %s: %w", name, err)
	}
	if sid != me && sid != systemSID {
		c.Close()
		return nil, fmt.Errorf("keychain-auth: %w: %s is served by %s, which is neither you (%s) nor SYSTEM; "+
			"something may be impersonating the daemon", ErrUntrustedDaemon, name, sid, me)
	}
	return c, nil
}

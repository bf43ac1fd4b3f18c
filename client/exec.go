package client

import (
	"context"
	"fmt"
	"os"

	"github.com/The-17/keychain-auth/protocol"
)

// ExecRead is the request of `keychain-auth exec`: it reads service's
// targets (with prefix, every target under targets[0]) on behalf of the
// program open as prog, whose descriptor travels with the request. The
// daemon hashes that descriptor and applies that program's policy, so the
// caller must then execute prog itself and nothing else. argv is the
// program's command line, recorded in pending.json when it is not
// registered.
//
// The daemon serves it only to its own binary and only as the first
// request of a connection, which it closes after the reply; any other
// program gets an *Error with reason action_not_in_policy. It is
// implemented on Linux only; elsewhere it fails with errors.ErrUnsupported.
func (c *Client) ExecRead(ctx context.Context, prog *os.File, argv []string, service string, targets []string, prefix bool, opts ...RequestOption) (*ReadResult, error) {
	o := collect(opts)
	req := &protocol.Request{
		Action:     protocol.ActionRead,
		Service:    service,
		Targets:    targets,
		Attributes: o.attrs,
		RequireAll: o.requireAll,
		ExecFD:     true,
		ExecArgv:   argv,
	}
	if prefix {
		req.Match = protocol.MatchPrefix
	}
	if prog == nil {
		return nil, opError(req, fmt.Errorf("no program descriptor"))
	}
	resp, err := c.doWith(ctx, req, prog)
	if err != nil {
		return nil, err
	}
	res := &ReadResult{Items: items(resp.Results), Values: make(map[string]string, len(resp.Results)), Missing: resp.Missing}
	for _, it := range res.Items {
		res.Values[it.Target] = it.Value
	}
	return res, nil
}

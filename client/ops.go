package client

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/The-17/keychain-auth/protocol"
)

// Item is one stored secret as the daemon reports it. Value is empty for
// Search, which never returns values.
type Item struct {
	Target     string
	Value      string
	Attributes map[string]string
}

// ReadResult is the answer to an exact Read.
type ReadResult struct {
	// Items holds the targets that exist, sorted by target.
	Items []Item
	// Values maps each found target to its value; a convenience view of Items.
	Values map[string]string
	// Missing lists the requested targets that do not exist.
	Missing []string
}

// RequestOption adjusts a Read, ReadPrefix, Delete or Search request.
type RequestOption func(*requestOptions)

type requestOptions struct {
	requireAll bool
	attrs      map[string]string
}

// RequireAll makes an exact Read or Delete all-or-nothing: if any target is
// absent the call fails with an *Error matching ErrNotFound whose Missing
// lists them, and nothing is read or deleted.
func RequireAll() RequestOption {
	return func(o *requestOptions) { o.requireAll = true }
}

// MatchAttributes restricts a request to items whose attributes contain every
// given pair.
func MatchAttributes(attrs map[string]string) RequestOption {
	return func(o *requestOptions) { o.attrs = attrs }
}

func collect(opts []RequestOption) requestOptions {
	var o requestOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Read fetches the named targets of service. Targets that do not exist are
// listed in Missing unless RequireAll is given.
func (c *Client) Read(ctx context.Context, service string, targets []string, opts ...RequestOption) (*ReadResult, error) {
	o := collect(opts)
	resp, err := c.do(ctx, &protocol.Request{
		Action:     protocol.ActionRead,
		Service:    service,
		Targets:    targets,
		Attributes: o.attrs,
		RequireAll: o.requireAll,
	})
	if err != nil {
		return nil, err
	}
	res := &ReadResult{Items: items(resp.Results), Values: make(map[string]string, len(resp.Results)), Missing: resp.Missing}
	for _, it := range res.Items {
		res.Values[it.Target] = it.Value
	}
	return res, nil
}

// ReadPrefix fetches every target of service whose name starts with prefix
// ("" means all of them), with values. It needs the search privilege.
func (c *Client) ReadPrefix(ctx context.Context, service, prefix string, opts ...RequestOption) ([]Item, error) {
	o := collect(opts)
	req := &protocol.Request{
		Action:     protocol.ActionRead,
		Service:    service,
		Match:      protocol.MatchPrefix,
		Targets:    []string{prefix},
		Attributes: o.attrs,
	}
	if o.requireAll {
		return nil, opError(req, fmt.Errorf("RequireAll applies to exact Read and Delete only; drop it from ReadPrefix"))
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	return items(resp.Results), nil
}

// Write stores values (target -> value) in service, all or nothing, with
// attrs attached to every item. Existing targets are overwritten.
func (c *Client) Write(ctx context.Context, service string, values map[string]string, attrs map[string]string) error {
	// Sorted so the same call always produces the same request (and audit line).
	targets := make([]string, 0, len(values))
	for t := range values {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	vals := make([]string, len(targets))
	for i, t := range targets {
		vals[i] = values[t]
	}
	req := &protocol.Request{
		Action:     protocol.ActionWrite,
		Service:    service,
		Targets:    targets,
		Values:     vals,
		Attributes: attrs,
	}
	// Said here, before the request is built: a value over 1 MiB would
	// otherwise be reported as a request line too long for the batch.
	for i, v := range vals {
		if len(v) > protocol.MaxValueLen {
			return opError(req, fmt.Errorf("%w: the value of target %q is %d bytes; the limit is %d bytes (64 KiB) per value; nothing was sent",
				ErrValueTooLarge, targets[i], len(v), protocol.MaxValueLen))
		}
	}
	_, err := c.do(ctx, req)
	return err
}

// Delete removes the named targets of service and returns the ones that did
// not exist. With RequireAll, any absent target fails the call (ErrNotFound)
// and nothing is deleted.
func (c *Client) Delete(ctx context.Context, service string, targets []string, opts ...RequestOption) (missing []string, err error) {
	o := collect(opts)
	resp, err := c.do(ctx, &protocol.Request{
		Action:     protocol.ActionDelete,
		Service:    service,
		Targets:    targets,
		Attributes: o.attrs,
		RequireAll: o.requireAll,
	})
	if err != nil {
		return nil, err
	}
	return resp.Missing, nil
}

// Search lists the targets of service whose names start with prefix ("" means
// all) and whose attributes contain every pair in attrs. It returns names and
// attributes, never values, and needs the search privilege.
func (c *Client) Search(ctx context.Context, service, prefix string, attrs map[string]string) ([]Item, error) {
	req := &protocol.Request{
		Action:     protocol.ActionSearch,
		Service:    service,
		Attributes: attrs,
	}
	// Without targets a search lists everything, as existing clients expect.
	if prefix != "" {
		req.Match = protocol.MatchPrefix
		req.Targets = []string{prefix}
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	return items(resp.Results), nil
}

// CheckResult is what the daemon knows about the calling program.
type CheckResult struct {
	Hash          string // "sha256:<hex>" of the caller's executable image
	Path          string // the path it was registered under
	CanSearch     bool
	ReadServices  []string // service patterns, e.g. "aws" or "aws-*"
	WriteServices []string
}

// Check asks the daemon how it sees the caller: its hash and privileges. It
// fails with ErrUnregistered when the binary is not registered.
func (c *Client) Check(ctx context.Context) (*CheckResult, error) {
	req := &protocol.Request{Action: protocol.ActionCheck}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(resp.Results) != 1 {
		return nil, opError(req, fmt.Errorf("%w: check answered with %d results, want 1", ErrProtocol, len(resp.Results)))
	}
	r := resp.Results[0]
	cr := &CheckResult{
		Hash:          r.Target,
		Path:          r.Attributes["path"],
		ReadServices:  splitList(r.Attributes["read_services"]),
		WriteServices: splitList(r.Attributes["write_services"]),
	}
	if s, ok := r.Attributes["can_search"]; ok && s != "" {
		if cr.CanSearch, err = strconv.ParseBool(s); err != nil {
			return nil, opError(req, fmt.Errorf("%w: check attribute can_search is %q, want true or false", ErrProtocol, s))
		}
	}
	return cr, nil
}

// splitList reads the daemon's comma-joined lists; "" is an empty list.
func splitList(s string) []string {
	out := []string{}
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func items(results []protocol.Result) []Item {
	out := make([]Item, len(results))
	for i, r := range results {
		out[i] = Item{Target: r.Target, Attributes: r.Attributes}
		if r.Value != nil {
			out[i].Value = *r.Value
		}
	}
	return out
}

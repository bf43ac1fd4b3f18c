package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/policy"
	"github.com/The-17/keychain-auth/protocol"
)

// handleLine answers one request line. closeAfter is set when the reply ends
// the connection (identity no longer holds).
func (c *session) handleLine(ctx context.Context, line []byte) (resp *protocol.Response, closeAfter bool) {
	if resp, closeAfter, ok := c.handleDescriptor(ctx, line); ok {
		return resp, closeAfter
	}
	req, decErr := protocol.DecodeRequestSecrets(line)
	defer req.ClearSecrets()
	rec := audit.Record{Event: audit.EventRequest}
	var id = req.ID
	fillRequest(&rec, req)

	fail := func(reason protocol.Reason, msg string) *protocol.Response {
		// The message says what failed or why it was refused (a tracer's
		// pid, a loader variable); it never holds a value.
		rec.Result, rec.Reason, rec.Message = resultOf(reason), string(reason), msg
		if c.auditHeld(ctx, rec) != nil {
			return protocol.Failure(id, protocol.ReasonInternalError, msgAuditDown)
		}
		return protocol.Failure(id, reason, msg)
	}

	if c.recheckNeeded() {
		if reason, msg := c.recheck(); reason != "" {
			c.log.Info("peer failed its re-check; closing", "reason", reason)
			return fail(reason, msg), true
		}
		c.checkedReads = c.in.n
	}
	if dec := c.identify(ctx); !dec.Allowed() {
		return fail(dec.Reason, dec.Message), !transient(dec)
	}
	if decErr != nil {
		return fail(protocol.ReasonMalformedRequest, decErr.Error()), false
	}
	if req.Action == protocol.ActionCheck {
		rec.Result = audit.ResultApproved
		if c.auditHeld(ctx, rec) != nil {
			return protocol.Failure(id, protocol.ReasonInternalError, msgAuditDown), false
		}
		return protocol.Success(id, []protocol.Result{checkResult(c.ident.Hash, c.path, c.grant)}), false
	}
	if dec := c.grant.Authorize(req); !dec.Allowed() {
		c.log.Info("request denied", "action", req.Action, "service", req.Service, "reason", dec.Reason)
		return fail(dec.Reason, dec.Message), false
	}

	out := c.execute(ctx, req)
	if out.reason != "" {
		c.log.Warn("request failed", "action", req.Action, "service", req.Service, "reason", out.reason, "err", out.err)
		if out.listTargets {
			rec.Targets = out.targets
		}
		r := fail(out.reason, out.message)
		r.Missing = out.missing
		return r, false
	}
	if out.listTargets {
		rec.Targets = out.targets
	}
	rec.Result = audit.ResultApproved
	record := c.auditHeld
	if req.Action != protocol.ActionRead && req.Action != protocol.ActionSearch {
		record = c.audit // the store may have changed: written before the answer
	}
	if record(ctx, rec) != nil {
		(&protocol.Response{Results: out.results}).ClearSecrets()
		return protocol.Failure(id, protocol.ReasonInternalError, msgAuditDown), false
	}
	r := protocol.Success(id, out.results)
	r.Missing = out.missing
	return r, false
}

// recheck confirms the peer still runs the image verified at connect and
// has not been tampered with since.
func (c *session) recheck() (protocol.Reason, string) {
	c.step("recheck")
	key, err := attest.StatKey(c.peer.ExePath())
	if err == nil {
		err = c.peer.Alive()
	}
	if err != nil || !key.SameImage(c.ident.Key) {
		return protocol.ReasonProcessChanged, "the process no longer runs the executable it was verified with; reconnect"
	}
	return c.tampered(false)
}

func checkResult(hash, path string, g policy.Grant) protocol.Result {
	return protocol.Result{Target: hash, Attributes: map[string]string{
		"path":           path,
		"can_search":     strconv.FormatBool(g.CanSearch),
		"read_services":  strings.Join(g.Read, ","),
		"write_services": strings.Join(g.Write, ","),
	}}
}

// outcome is what executing a request produced.
type outcome struct {
	results []protocol.Result
	missing []string
	// targets are those the request actually touched, for the audit log of
	// prefix operations and searches (listTargets set).
	targets     []string
	listTargets bool

	reason  protocol.Reason
	message string
	err     error
}

func storeFailure(op string, err error) outcome {
	if errors.Is(err, backend.ErrLocked) {
		return outcome{reason: protocol.ReasonBackendLocked, message: "the secret store is locked: " + err.Error(), err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return outcome{reason: protocol.ReasonBackendError, message: op + " was interrupted: the daemon is shutting down or the store is slow", err: err}
	}
	return outcome{reason: protocol.ReasonBackendError, message: fmt.Sprintf("%s failed: %v", op, err), err: err}
}

// storeService maps a request's service to the store's namespace. In system
// mode every uid has its own namespace, so one user never sees another's.
func (c *session) storeService(service string) string {
	if c.s.opts.AnyUID {
		return "uid-" + strconv.FormatUint(uint64(c.peerUID), 10) + ":" + service
	}
	return service
}

func (c *session) execute(ctx context.Context, req *protocol.Request) outcome {
	be := c.s.opts.Backend
	svc := c.storeService(req.Service)
	prefix := req.EffectiveMatch() == protocol.MatchPrefix

	switch req.Action {
	case protocol.ActionWrite:
		items := make([]backend.Item, len(req.Targets))
		for i, t := range req.Targets {
			// The request's own bytes (DecodeRequestSecrets): wiped
			// below and by handleLine, never copied into a string.
			items[i] = backend.Item{Target: t, Value: req.SecretValue(i), Attributes: req.Attributes}
		}
		err := be.Set(ctx, svc, items)
		for i := range items {
			clear(items[i].Value)
		}
		if err != nil {
			return storeFailure("write", err)
		}
		return outcome{results: targetResults(req.Targets)}

	case protocol.ActionRead:
		if prefix {
			items, err := be.List(ctx, svc, req.Targets[0], req.Attributes)
			if err != nil {
				return storeFailure("read", err)
			}
			return outcome{results: itemResults(items, true), targets: itemTargets(items), listTargets: true}
		}
		found, missing, err := c.lookup(ctx, svc, req)
		if err != nil {
			return storeFailure("read", err)
		}
		if req.RequireAll && len(missing) > 0 {
			clearItems(found)
			return notFound(missing)
		}
		return outcome{results: itemResults(found, true), missing: missing}

	case protocol.ActionDelete:
		var targets, missing []string
		if prefix {
			items, err := be.List(ctx, svc, req.Targets[0], req.Attributes)
			if err != nil {
				return storeFailure("delete", err)
			}
			clearItems(items)
			targets = itemTargets(items)
		} else {
			found, miss, err := c.lookup(ctx, svc, req)
			clearItems(found)
			if err != nil {
				return storeFailure("delete", err)
			}
			if req.RequireAll && len(miss) > 0 {
				return notFound(miss)
			}
			targets, missing = itemTargets(found), miss
		}
		if len(targets) > 0 {
			if err := be.Delete(ctx, svc, targets); err != nil {
				o := storeFailure("delete", err)
				o.targets, o.listTargets = targets, prefix
				return o
			}
		}
		return outcome{results: targetResults(targets), missing: missing, targets: targets, listTargets: prefix}

	case protocol.ActionSearch:
		var items []backend.Item
		if prefix {
			var p string
			if len(req.Targets) > 0 {
				p = req.Targets[0]
			}
			var err error
			if items, err = be.List(ctx, svc, p, req.Attributes); err != nil {
				return storeFailure("search", err)
			}
		} else {
			var err error
			if items, _, err = c.lookup(ctx, svc, req); err != nil {
				return storeFailure("search", err)
			}
		}
		clearItems(items)
		return outcome{results: itemResults(items, false), targets: itemTargets(items), listTargets: true}
	}
	return outcome{reason: protocol.ReasonInternalError, message: "unhandled action " + string(req.Action)}
}

// lookup fetches the named targets. A target that is absent, or present but
// without every requested attribute, is missing.
func (c *session) lookup(ctx context.Context, svc string, req *protocol.Request) (found []backend.Item, missing []string, err error) {
	if mg, ok := c.s.opts.Backend.(backend.MultiGetter); ok && len(req.Targets) > 1 {
		items, err := mg.GetMany(ctx, svc, req.Targets)
		if err != nil {
			return nil, nil, err
		}
		present := make(map[string]bool, len(items))
		for _, it := range items {
			present[it.Target] = true
			if backend.MatchAttrs(it.Attributes, req.Attributes) {
				found = append(found, it)
			} else {
				clear(it.Value)
				missing = append(missing, it.Target)
			}
		}
		for _, t := range req.Targets {
			if !present[t] {
				missing = append(missing, t)
			}
		}
		slices.SortFunc(found, func(a, b backend.Item) int { return strings.Compare(a.Target, b.Target) })
		slices.Sort(missing)
		return found, missing, nil
	}
	for _, t := range req.Targets {
		it, err := c.s.opts.Backend.Get(ctx, svc, t)
		switch {
		case errors.Is(err, backend.ErrNotFound):
			missing = append(missing, t)
		case err != nil:
			clearItems(found)
			return nil, nil, err
		case !backend.MatchAttrs(it.Attributes, req.Attributes):
			clear(it.Value)
			missing = append(missing, t)
		default:
			found = append(found, it)
		}
	}
	slices.SortFunc(found, func(a, b backend.Item) int { return strings.Compare(a.Target, b.Target) })
	slices.Sort(missing)
	return found, missing, nil
}

func notFound(missing []string) outcome {
	msg := fmt.Sprintf("%d of the requested targets do not exist; nothing was done", len(missing))
	if len(missing) == 1 {
		msg = "1 of the requested targets does not exist; nothing was done"
	}
	return outcome{reason: protocol.ReasonNotFound, missing: missing, message: msg}
}

// itemResults converts items to results, consuming (zeroing) their values.
func itemResults(items []backend.Item, withValues bool) []protocol.Result {
	out := make([]protocol.Result, len(items))
	for i, it := range items {
		out[i] = protocol.Result{Target: it.Target, Attributes: it.Attributes}
		if withValues {
			// The reply owns the value's bytes from here, and serve
			// clears them once it is encoded: no string copy of a secret
			// is left for the GC to drop uncleared.
			out[i] = out[i].WithSecret(it.Value)
			continue
		}
		clear(it.Value)
	}
	slices.SortFunc(out, func(a, b protocol.Result) int { return strings.Compare(a.Target, b.Target) })
	return out
}

func targetResults(targets []string) []protocol.Result {
	out := make([]protocol.Result, len(targets))
	for i, t := range targets {
		out[i] = protocol.Result{Target: t}
	}
	slices.SortFunc(out, func(a, b protocol.Result) int { return strings.Compare(a.Target, b.Target) })
	return out
}

func itemTargets(items []backend.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Target
	}
	slices.Sort(out)
	return out
}

func clearItems(items []backend.Item) {
	for _, it := range items {
		clear(it.Value)
	}
}

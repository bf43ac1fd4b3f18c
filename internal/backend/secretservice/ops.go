package secretservice

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"

	"github.com/The-17/keychain-auth/internal/backend"
)

// stored is one item as the service holds it.
type stored struct {
	path  dbus.ObjectPath
	attrs map[string]string // every attribute, ours included
	label string
	ctype string // content type, kept so a rollback restores it too
	value []byte
}

func label(service, target string) string {
	return "keychain-auth: " + service + "/" + target
}

// attrSchema is libsecret's schema attribute. gnome-keyring adds it
// ("org.freedesktop.Secret.Generic") to items it loads from disk even when
// nobody set it, and secret-tool hides it; it is bookkeeping, not the user's.
const attrSchema = "xdg:schema"

func reserved(key string) bool {
	return key == AttrService || key == AttrTarget || key == attrSchema
}

// userAttrs strips bookkeeping attributes; nil when nothing is left.
func userAttrs(all map[string]string) map[string]string {
	var out map[string]string
	for k, v := range all {
		if reserved(k) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(all))
		}
		out[k] = v
	}
	return out
}

// busString rejects what D-Bus cannot carry in a string (invalid UTF-8, NUL):
// sending it would make the bus drop our connection.
func busString(what, s string) error {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return fmt.Errorf("secret-service: %s %q cannot be stored in the Secret Service: D-Bus strings must be valid UTF-8 without NUL bytes", what, s)
	}
	return nil
}

func checkAttrs(attrs map[string]string) error {
	for k, v := range attrs {
		if reserved(k) {
			return fmt.Errorf("secret-service: attribute %q is reserved for the keyring's bookkeeping; use another name", k)
		}
		if err := busString("attribute name", k); err != nil {
			return err
		}
		if err := busString("attribute value", v); err != nil {
			return err
		}
	}
	return nil
}

// newer orders the items the service lists for one target when there are
// several (made by other programs): the greatest path wins, which for
// gnome-keyring's increasing item numbers is the most recently created.
func newer(a, b dbus.ObjectPath) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// search is the result of finding items in the default collection.
type search struct {
	coll   dbus.ObjectPath     // noPrompt ("/") when there is no default collection
	paths  [][]dbus.ObjectPath // per query
	locked bool                // some of paths are locked: unlock coll before reading them
}

// find resolves the default collection and runs one Service.SearchItems per
// query, all in one pipeline, keeping only items of the default collection.
func (b *Backend) find(ctx context.Context, op string, queries []map[string]string) (search, error) {
	var coll dbus.ObjectPath
	calls := []*call{{path: servicePath, method: ifService + ".ReadAlias", args: []any{"default"}, out: []any{&coll}}}
	unlocked := make([][]dbus.ObjectPath, len(queries))
	locked := make([][]dbus.ObjectPath, len(queries))
	for i, q := range queries {
		calls = append(calls, &call{path: servicePath, method: ifService + ".SearchItems",
			args: []any{q}, out: []any{&unlocked[i], &locked[i]}})
	}
	if err := b.run(ctx, op, calls...); err != nil {
		return search{}, err
	}
	res := search{coll: coll, paths: make([][]dbus.ObjectPath, len(queries))}
	if coll == noPrompt {
		return res, nil
	}
	prefix := string(coll) + "/"
	inColl := func(p dbus.ObjectPath) bool { return strings.HasPrefix(string(p), prefix) }
	for i := range queries {
		for _, p := range unlocked[i] {
			if inColl(p) {
				res.paths[i] = append(res.paths[i], p)
			}
		}
		for _, p := range locked[i] {
			if inColl(p) {
				res.locked = true
				res.paths[i] = append(res.paths[i], p)
			}
		}
	}
	return res, nil
}

// unlock asks the service to unlock coll. A headless daemon cannot answer a
// password prompt, so when the service wants one the prompt is dismissed and
// the caller gets ErrLocked with instructions.
func (b *Backend) unlock(ctx context.Context, op string, coll dbus.ObjectPath) error {
	var done []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := b.call1(ctx, op, servicePath, ifService+".Unlock", []any{[]dbus.ObjectPath{coll}}, &done, &prompt); err != nil {
		return err
	}
	if prompt != noPrompt {
		b.dismiss(ctx, prompt)
		return fmt.Errorf("secret-service: %s: collection %s: %s: %w", op, coll, unlockHint, backend.ErrLocked)
	}
	if !slices.Contains(done, coll) {
		return fmt.Errorf("secret-service: %s: collection %s stayed locked: %s: %w", op, coll, unlockHint, backend.ErrLocked)
	}
	return nil
}

// dismiss withdraws a prompt we will not show, so the service does not keep
// it around; failure is harmless.
func (b *Backend) dismiss(ctx context.Context, prompt dbus.ObjectPath) {
	_ = b.call1(context.WithoutCancel(ctx), "dismiss prompt", prompt, ifPrompt+".Dismiss", nil)
}

// read fetches the values of paths and, unless the caller already has them
// (known[i] for paths[i]), their attributes and labels, all in one pipeline.
// Items that vanished meanwhile (another program deleted them) are left out.
func (b *Backend) read(ctx context.Context, op string, paths []dbus.ObjectPath, known []map[string]string) ([]stored, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	props := make([]map[string]dbus.Variant, len(paths))
	var secrets map[dbus.ObjectPath]wireSecret
	var sess *session
	err := b.withSession(ctx, func(s *session) error {
		sess = s
		calls := make([]*call, 0, len(paths)+1)
		if known == nil {
			for i, p := range paths {
				calls = append(calls, &call{path: p, method: ifProps + ".GetAll", args: []any{ifItem}, out: []any{&props[i]}})
			}
		}
		calls = append(calls, &call{path: servicePath, method: ifService + ".GetSecrets",
			args: []any{paths, s.path}, out: []any{&secrets}})
		return b.run(ctx, op, calls...)
	})
	if err != nil {
		return nil, err
	}
	out := make([]stored, 0, len(paths))
	for i, p := range paths {
		w, ok := secrets[p]
		if !ok {
			continue
		}
		v, err := sess.unseal(w)
		if err != nil {
			return nil, fmt.Errorf("secret-service: %s: item %s: %w", op, p, err)
		}
		st := stored{path: p, value: v, ctype: w.ContentType}
		if known != nil {
			st.attrs = known[i]
		} else {
			st.attrs, _ = props[i]["Attributes"].Value().(map[string]string)
			st.label, _ = props[i]["Label"].Value().(string)
		}
		out = append(out, st)
	}
	return out, nil
}

// attributes fetches the attributes of paths in one pipeline.
func (b *Backend) attributes(ctx context.Context, op string, paths []dbus.ObjectPath) ([]map[string]string, error) {
	vals := make([]dbus.Variant, len(paths))
	calls := make([]*call, len(paths))
	for i, p := range paths {
		calls[i] = &call{path: p, method: ifProps + ".Get", args: []any{ifItem, "Attributes"}, out: []any{&vals[i]}}
	}
	if err := b.run(ctx, op, calls...); err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(paths))
	for i, v := range vals {
		out[i], _ = v.Value().(map[string]string)
	}
	return out, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, service, target string) (backend.Item, error) {
	items, err := b.GetMany(ctx, service, []string{target})
	if err != nil {
		return backend.Item{}, err
	}
	if len(items) == 0 {
		return backend.Item{}, fmt.Errorf("secret-service: get %q in service %q: %w", target, service, backend.ErrNotFound)
	}
	return items[0], nil
}

// GetMany fetches several targets in two round trips (the searches go out
// together, then one GetSecrets), instead of two per target. Absent targets
// are left out of the result.
func (b *Backend) GetMany(ctx context.Context, service string, targets []string) ([]backend.Item, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	op := fmt.Sprintf("get %d targets in service %q", len(targets), service)
	if len(targets) == 1 {
		op = fmt.Sprintf("get %q in service %q", targets[0], service)
	}
	if err := b.usable(ctx, op); err != nil {
		return nil, err
	}
	queries := make([]map[string]string, len(targets))
	for i, t := range targets {
		if err := errors.Join(busString("service", service), busString("target", t)); err != nil {
			return nil, err
		}
		queries[i] = map[string]string{AttrService: service, AttrTarget: t}
	}
	found, err := b.find(ctx, op, queries)
	if err != nil {
		return nil, err
	}
	if found.locked {
		if err := b.unlock(ctx, op, found.coll); err != nil {
			return nil, err
		}
	}
	var best []dbus.ObjectPath
	var bestTarget []string
	for i, paths := range found.paths {
		if len(paths) == 0 {
			continue
		}
		p := paths[0]
		for _, q := range paths[1:] {
			if newer(q, p) {
				p = q
			}
		}
		best, bestTarget = append(best, p), append(bestTarget, targets[i])
	}
	got, err := b.read(ctx, op, best, nil)
	if err != nil {
		return nil, err
	}
	byPath := make(map[dbus.ObjectPath]stored, len(got))
	for _, st := range got {
		byPath[st.path] = st
	}
	items := make([]backend.Item, 0, len(got))
	for i, p := range best {
		if st, ok := byPath[p]; ok {
			items = append(items, backend.Item{Target: bestTarget[i], Value: st.value, Attributes: userAttrs(st.attrs)})
		}
	}
	return items, nil
}

// List implements backend.Backend. The service filters by service and
// attributes; the prefix is applied here, before any value is fetched, so
// only the values returned cross the bus.
func (b *Backend) List(ctx context.Context, service, prefix string, attrs map[string]string) ([]backend.Item, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	op := fmt.Sprintf("list %q* in service %q", prefix, service)
	if err := b.usable(ctx, op); err != nil {
		return nil, err
	}
	if err := errors.Join(busString("service", service), busString("prefix", prefix), checkAttrs(attrs)); err != nil {
		return nil, err
	}
	query := maps.Clone(attrs)
	if query == nil {
		query = make(map[string]string, 1)
	}
	query[AttrService] = service
	found, err := b.find(ctx, op, []map[string]string{query})
	if err != nil {
		return nil, err
	}
	if found.locked {
		if err := b.unlock(ctx, op, found.coll); err != nil {
			return nil, err
		}
	}
	paths := found.paths[0]
	all, err := b.attributes(ctx, op, paths)
	if err != nil {
		return nil, err
	}
	// One item per target; values are fetched only for those chosen.
	chosen := make(map[string]int)
	for i, a := range all {
		t, ok := a[AttrTarget]
		if !ok || a[AttrService] != service || !strings.HasPrefix(t, prefix) || !backend.MatchAttrs(a, attrs) {
			continue
		}
		if cur, dup := chosen[t]; !dup || newer(paths[i], paths[cur]) {
			chosen[t] = i
		}
	}
	readPaths := make([]dbus.ObjectPath, 0, len(chosen))
	readAttrs := make([]map[string]string, 0, len(chosen))
	for _, i := range chosen {
		readPaths = append(readPaths, paths[i])
		readAttrs = append(readAttrs, all[i])
	}
	items, err := b.read(ctx, op, readPaths, readAttrs)
	if err != nil {
		return nil, err
	}
	out := make([]backend.Item, 0, len(items))
	for _, st := range items {
		out = append(out, backend.Item{Target: st.attrs[AttrTarget], Value: st.value, Attributes: userAttrs(st.attrs)})
	}
	slices.SortFunc(out, func(x, y backend.Item) int { return strings.Compare(x.Target, y.Target) })
	return out, nil
}

// Ready reports whether the backend can store secrets now: the default
// collection exists and is unlocked, or could be unlocked without a prompt.
// Otherwise it returns an error wrapping ErrLocked that tells the user what
// to do, so `start` can fail early instead of at the first write.
func (b *Backend) Ready(ctx context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	const op = "check the default keyring"
	if err := b.usable(ctx, op); err != nil {
		return err
	}
	var coll dbus.ObjectPath
	if err := b.call1(ctx, op, servicePath, ifService+".ReadAlias", []any{"default"}, &coll); err != nil {
		return err
	}
	if coll == noPrompt {
		return fmt.Errorf("secret-service: %s: %s: %w", op, noDefaultHint, backend.ErrLocked)
	}
	return b.unlock(ctx, op, coll)
}

const noDefaultHint = "there is no default keyring, and creating one needs a password prompt that a background daemon cannot show; " +
	"create it from the desktop (log in once, or use Seahorse), then retry"

// writable returns the default collection, unlocked, creating it if the
// service has none (as libsecret does) when that needs no prompt.
func (b *Backend) writable(ctx context.Context, op string, coll dbus.ObjectPath) (dbus.ObjectPath, error) {
	if coll == noPrompt {
		var prompt dbus.ObjectPath
		props := map[string]dbus.Variant{ifCollection + ".Label": dbus.MakeVariant("Default keyring")}
		if err := b.call1(ctx, op, servicePath, ifService+".CreateCollection", []any{props, "default"}, &coll, &prompt); err != nil {
			return "", err
		}
		if coll == noPrompt {
			if prompt != noPrompt {
				b.dismiss(ctx, prompt)
			}
			return "", fmt.Errorf("secret-service: %s: %s: %w", op, noDefaultHint, backend.ErrLocked)
		}
		return coll, nil
	}
	return coll, b.unlock(ctx, op, coll)
}

// writeItem upserts one item into coll and returns its path.
func (b *Backend) writeItem(ctx context.Context, op string, coll dbus.ObjectPath, lbl, ctype string, attrs map[string]string, value []byte) (dbus.ObjectPath, error) {
	props := map[string]dbus.Variant{
		ifItem + ".Label":      dbus.MakeVariant(lbl),
		ifItem + ".Attributes": dbus.MakeVariant(attrs),
	}
	var path, prompt dbus.ObjectPath
	err := b.withSession(ctx, func(s *session) error {
		sec, err := s.seal(value, ctype)
		if err != nil {
			return fmt.Errorf("secret-service: %s: %w", op, err)
		}
		return b.call1(ctx, op, coll, ifCollection+".CreateItem", []any{props, sec, true}, &path, &prompt)
	})
	if err != nil {
		return "", err
	}
	if path == noPrompt {
		if prompt != noPrompt {
			b.dismiss(ctx, prompt)
		}
		return "", fmt.Errorf("secret-service: %s: %s: %w", op, unlockHint, backend.ErrLocked)
	}
	return path, nil
}

// deleteItem removes one item; one that is already gone counts as removed.
func (b *Backend) deleteItem(ctx context.Context, op string, path dbus.ObjectPath) error {
	var prompt dbus.ObjectPath
	c := &call{path: path, method: ifItem + ".Delete", out: []any{&prompt}}
	if err := b.run(ctx, op, c); err != nil {
		var de dbus.Error
		if errors.As(c.err, &de) && (de.Name == "org.freedesktop.Secret.Error.NoSuchObject" || de.Name == "org.freedesktop.DBus.Error.UnknownObject" || de.Name == "org.freedesktop.DBus.Error.UnknownMethod") {
			return nil
		}
		return err
	}
	if prompt != noPrompt {
		b.dismiss(ctx, prompt)
		return fmt.Errorf("secret-service: %s: %s: %w", op, unlockHint, backend.ErrLocked)
	}
	return nil
}

// snapshot finds and reads the current items of targets, keyed by target, so
// a failed batch can put them back.
func (b *Backend) snapshot(ctx context.Context, op, service string, targets []string, forWrite bool) (dbus.ObjectPath, map[string][]stored, error) {
	queries := make([]map[string]string, len(targets))
	for i, t := range targets {
		queries[i] = map[string]string{AttrService: service, AttrTarget: t}
	}
	found, err := b.find(ctx, op, queries)
	if err != nil {
		return "", nil, err
	}
	var paths []dbus.ObjectPath
	for _, ps := range found.paths {
		paths = append(paths, ps...)
	}
	coll := found.coll
	switch {
	case forWrite:
		if coll, err = b.writable(ctx, op, coll); err != nil {
			return "", nil, err
		}
	case len(paths) > 0 && found.locked:
		if err := b.unlock(ctx, op, coll); err != nil {
			return "", nil, err
		}
	}
	items, err := b.read(ctx, op, paths, nil)
	if err != nil {
		return "", nil, err
	}
	snap := make(map[string][]stored, len(targets))
	for _, st := range items {
		t := st.attrs[AttrTarget]
		snap[t] = append(snap[t], st)
	}
	return coll, snap, nil
}

func wipe(snap map[string][]stored) {
	for _, items := range snap {
		for _, st := range items {
			clear(st.value)
		}
	}
}

// Set implements backend.Backend. Before writing, it reads what each target
// holds; if any write fails, every touched target is put back as it was
// (values, attributes, labels) and items the batch created are removed.
func (b *Backend) Set(ctx context.Context, service string, items []backend.Item) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	op := fmt.Sprintf("set %d items in service %q", len(items), service)
	if len(items) == 1 {
		op = fmt.Sprintf("set %q in service %q", items[0].Target, service)
	}
	if err := b.usable(ctx, op); err != nil {
		return err
	}
	if err := busString("service", service); err != nil {
		return err
	}
	var targets []string
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if err := errors.Join(busString("target", it.Target), checkAttrs(it.Attributes)); err != nil {
			return err
		}
		if !seen[it.Target] {
			seen[it.Target] = true
			targets = append(targets, it.Target)
		}
	}
	if len(items) == 0 {
		return nil
	}
	coll, snap, err := b.snapshot(ctx, op, service, targets, true)
	if err != nil {
		return err
	}
	defer wipe(snap)

	// current tracks the paths each target has now, as the batch changes them.
	current := make(map[string][]dbus.ObjectPath, len(targets))
	for t, sts := range snap {
		for _, st := range sts {
			current[t] = append(current[t], st.path)
		}
	}
	var touched []string
	for _, it := range items {
		if err := b.setOne(ctx, op, coll, service, it, current, &touched); err != nil {
			return b.rollback(ctx, op, coll, service, touched, snap, current, err)
		}
	}
	return nil
}

func (b *Backend) setOne(ctx context.Context, op string, coll dbus.ObjectPath, service string, it backend.Item, current map[string][]dbus.ObjectPath, touched *[]string) error {
	if err := b.step(); err != nil {
		return err
	}
	if !slices.Contains(*touched, it.Target) {
		*touched = append(*touched, it.Target)
	}
	attrs := maps.Clone(it.Attributes)
	if attrs == nil {
		attrs = make(map[string]string, 2)
	}
	attrs[AttrService], attrs[AttrTarget] = service, it.Target
	path, err := b.writeItem(ctx, op, coll, label(service, it.Target), contentType, attrs, it.Value)
	if err != nil {
		return err
	}
	// The service replaced in place only if the attributes matched; items
	// of this target with other attributes are now stale duplicates.
	paths := current[it.Target]
	if !slices.Contains(paths, path) {
		paths = append(paths, path)
	}
	current[it.Target] = paths
	for _, p := range slices.Clone(paths) {
		if p == path {
			continue
		}
		if err := b.deleteItem(ctx, op, p); err != nil {
			return err
		}
		current[it.Target] = slices.DeleteFunc(current[it.Target], func(q dbus.ObjectPath) bool { return q == p })
	}
	return nil
}

// rollback restores touched targets to snap after cause made a batch fail.
// It runs even if ctx was cancelled: leaving half a batch behind is worse.
func (b *Backend) rollback(ctx context.Context, op string, coll dbus.ObjectPath, service string, touched []string, snap map[string][]stored, current map[string][]dbus.ObjectPath, cause error) error {
	rctx := context.WithoutCancel(ctx)
	var errs []error
	for _, t := range slices.Backward(touched) {
		keep := make(map[dbus.ObjectPath]bool)
		for _, st := range snap[t] {
			p, err := b.writeItem(rctx, "roll back "+op, coll, st.label, st.ctype, st.attrs, st.value)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			keep[p] = true
		}
		for _, p := range current[t] {
			if keep[p] {
				continue
			}
			if err := b.deleteItem(rctx, "roll back "+op, p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; rolling back also failed, so the keyring may hold part of the batch (check service %q with Seahorse or secret-tool): %w",
			cause, service, errors.Join(errs...))
	}
	return fmt.Errorf("%w (nothing was changed: the batch was rolled back)", cause)
}

// Delete implements backend.Backend. The values of the targets are read
// first; if a removal fails, what was removed is written back.
func (b *Backend) Delete(ctx context.Context, service string, targets []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	op := fmt.Sprintf("delete %d targets in service %q", len(targets), service)
	if len(targets) == 1 {
		op = fmt.Sprintf("delete %q in service %q", targets[0], service)
	}
	if err := b.usable(ctx, op); err != nil {
		return err
	}
	if err := busString("service", service); err != nil {
		return err
	}
	var uniq []string
	for _, t := range targets {
		if err := busString("target", t); err != nil {
			return err
		}
		if !slices.Contains(uniq, t) {
			uniq = append(uniq, t)
		}
	}
	if len(uniq) == 0 {
		return nil
	}
	coll, snap, err := b.snapshot(ctx, op, service, uniq, false)
	if err != nil {
		return err
	}
	defer wipe(snap)
	var removed []stored
	for _, t := range uniq {
		if len(snap[t]) == 0 {
			continue
		}
		err := b.step()
		for _, st := range snap[t] {
			if err != nil {
				break
			}
			if err = b.deleteItem(ctx, op, st.path); err == nil {
				removed = append(removed, st)
			}
		}
		if err != nil {
			return b.restore(ctx, op, coll, service, removed, err)
		}
	}
	return nil
}

// restore writes back items a failed Delete removed.
func (b *Backend) restore(ctx context.Context, op string, coll dbus.ObjectPath, service string, removed []stored, cause error) error {
	rctx := context.WithoutCancel(ctx)
	var errs []error
	for _, st := range slices.Backward(removed) {
		if _, err := b.writeItem(rctx, "roll back "+op, coll, st.label, st.ctype, st.attrs, st.value); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; restoring the removed items also failed, so some are gone (check service %q with Seahorse or secret-tool): %w",
			cause, service, errors.Join(errs...))
	}
	return fmt.Errorf("%w (nothing was changed: removed items were restored)", cause)
}

// Package backendtest is the conformance suite every backend.Backend must pass:
// round trips, attributes, prefix and attribute listing, unicode, large values,
// batch rollback (with backend.FaultInjector), concurrency and error kinds.
//
// Values the suite stores are valid UTF-8, because protocol values are JSON
// strings; whether a backend also keeps arbitrary bytes is up to it and is
// tested in its own package. Failure messages never print stored values.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
)

// Run runs the suite. open must return a fresh, empty store for each call and
// register its own cleanup (t.Cleanup) to close it and remove what it made;
// that cleanup must tolerate a store the suite already closed. Subtests run in
// parallel, so open is called concurrently.
func Run(t *testing.T, open func(t *testing.T) backend.Backend) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(*testing.T, backend.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"GetAbsentIsNotFound", testGetAbsent},
		{"UpsertReplacesValueAndAttributes", testUpsert},
		{"Unicode", testUnicode},
		{"LargeValue", testLargeValue},
		{"EmptyValue", testEmptyValue},
		{"ControlAndMultibyteValue", testOddValue},
		{"List", testList},
		{"ServicesDoNotLeak", testServiceIsolation},
		{"DeletePresentAndAbsent", testDelete},
		{"BatchOf50", testBatch50},
		{"SetRollsBackOnFault", testSetRollback},
		{"DeleteRollsBackOnFault", testDeleteRollback},
		{"Concurrent", testConcurrent},
		{"CancelledContext", testCancelled},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, open(t))
		})
	}
}

// check fails the test when got differs from want, without printing values.
func check(t *testing.T, what string, got, want backend.Item) {
	t.Helper()
	if got.Target != want.Target {
		t.Errorf("%s: target = %q, want %q", what, got.Target, want.Target)
	}
	if !bytes.Equal(got.Value, want.Value) {
		t.Errorf("%s: value differs from what was stored (got %d bytes, want %d)", what, len(got.Value), len(want.Value))
	}
	if !attrsEqual(got.Attributes, want.Attributes) {
		t.Errorf("%s: attributes = %v, want %v", what, got.Attributes, want.Attributes)
	}
}

// attrsEqual treats nil and empty maps alike: a backend need not remember
// whether the caller passed one or the other.
func attrsEqual(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

func checkList(t *testing.T, what string, got, want []backend.Item) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d items %v, want %d %v", what, len(got), targets(got), len(want), targets(want))
		return
	}
	for i := range got {
		check(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func targets(items []backend.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Target
	}
	return out
}

func item(target, value string, attrs map[string]string) backend.Item {
	return backend.Item{Target: target, Value: []byte(value), Attributes: attrs}
}

func mustSet(t *testing.T, b backend.Backend, service string, items ...backend.Item) {
	t.Helper()
	if err := b.Set(t.Context(), service, items); err != nil {
		t.Fatalf("Set(%q, %d items): %v", service, len(items), err)
	}
}

func mustGet(t *testing.T, b backend.Backend, service, target string) backend.Item {
	t.Helper()
	it, err := b.Get(t.Context(), service, target)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", service, target, err)
	}
	return it
}

func mustList(t *testing.T, b backend.Backend, service, prefix string, attrs map[string]string) []backend.Item {
	t.Helper()
	items, err := b.List(t.Context(), service, prefix, attrs)
	if err != nil {
		t.Fatalf("List(%q, %q, %v): %v", service, prefix, attrs, err)
	}
	return items
}

func wantNotFound(t *testing.T, b backend.Backend, service, target string) {
	t.Helper()
	_, err := b.Get(t.Context(), service, target)
	switch {
	case err == nil:
		t.Errorf("Get(%q, %q) found an item, want ErrNotFound", service, target)
	case !errors.Is(err, backend.ErrNotFound):
		t.Errorf("Get(%q, %q) = %v, want an error wrapping ErrNotFound", service, target, err)
	case errors.Is(err, backend.ErrLocked), errors.Is(err, backend.ErrUnavailable):
		t.Errorf("Get(%q, %q) = %v: not-found must not also claim locked/unavailable", service, target, err)
	}
}

func testRoundTrip(t *testing.T, b backend.Backend) {
	want := item("alice", "s3cret", map[string]string{"environment": "production"})
	mustSet(t, b, "aws", want)
	check(t, "Get", mustGet(t, b, "aws", "alice"), want)
	// The backend must have copied the value: callers zero their buffers.
	clear(want.Value)
	check(t, "Get after caller zeroed its buffer", mustGet(t, b, "aws", "alice"), item("alice", "s3cret", map[string]string{"environment": "production"}))
	// And the caller owns what Get returned.
	got := mustGet(t, b, "aws", "alice")
	clear(got.Value)
	got.Attributes["environment"] = "changed"
	check(t, "Get after caller changed a result", mustGet(t, b, "aws", "alice"), item("alice", "s3cret", map[string]string{"environment": "production"}))
}

func testGetAbsent(t *testing.T, b backend.Backend) {
	wantNotFound(t, b, "nosuchservice", "x")
	mustSet(t, b, "svc", item("present", "v", nil))
	wantNotFound(t, b, "svc", "absent")
	wantNotFound(t, b, "svc", "presen")
	wantNotFound(t, b, "svc", "present2")
	wantNotFound(t, b, "sv", "present")
}

func testUpsert(t *testing.T, b backend.Backend) {
	mustSet(t, b, "svc", item("t", "first", map[string]string{"a": "1", "b": "2"}))
	want := item("t", "second value", map[string]string{"c": "3"})
	mustSet(t, b, "svc", want)
	check(t, "Get after upsert", mustGet(t, b, "svc", "t"), want)
	checkList(t, "List after upsert", mustList(t, b, "svc", "", nil), []backend.Item{want})
	if got := mustList(t, b, "svc", "", map[string]string{"a": "1"}); len(got) != 0 {
		t.Errorf("List filtered by a replaced attribute returned %v; attributes must be replaced, not merged", targets(got))
	}
	want = item("t", "third", nil)
	mustSet(t, b, "svc", want)
	check(t, "Get after upsert without attributes", mustGet(t, b, "svc", "t"), want)
}

func testUnicode(t *testing.T, b backend.Backend) {
	const service = "сервис-🔑-服务"
	want := []backend.Item{
		item("ключ/目标 ✓", "пароль 🔐 パスワード", map[string]string{"環境": "本番 🌍", "emoji🙂": "ünïcødé"}),
		item("ключ/目标 ✓✓", "ÅÄÖ", map[string]string{"環境": "開発"}),
	}
	mustSet(t, b, service, want...)
	for _, w := range want {
		check(t, "Get "+w.Target, mustGet(t, b, service, w.Target), w)
	}
	checkList(t, "List unicode prefix", mustList(t, b, service, "ключ/目标 ✓", nil), want)
	checkList(t, "List unicode attribute", mustList(t, b, service, "", map[string]string{"環境": "本番 🌍"}), want[:1])
}

// testLargeValue stores the protocol's largest value, 64 KiB, of varied
// content so truncation or re-encoding anywhere shows up.
func testLargeValue(t *testing.T, b backend.Backend) {
	var sb strings.Builder
	for i := 0; sb.Len() < 64*1024-8; i++ {
		if i%7 == 0 {
			sb.WriteString("é€")
		} else {
			sb.WriteByte(byte(' ' + i%95))
		}
	}
	for sb.Len() < 64*1024 {
		sb.WriteByte('z')
	}
	v := sb.String()
	if len(v) != 64*1024 {
		t.Fatalf("test bug: value is %d bytes", len(v))
	}
	want := []backend.Item{item("big", v, map[string]string{"size": "64k"}), item("big2", v[:64*1024-1]+"!", nil)}
	mustSet(t, b, "svc", want...)
	check(t, "Get big", mustGet(t, b, "svc", "big"), want[0])
	checkList(t, "List big", mustList(t, b, "svc", "big", nil), want)
}

func testEmptyValue(t *testing.T, b backend.Backend) {
	mustSet(t, b, "svc", item("empty", "", map[string]string{"k": "v"}))
	got := mustGet(t, b, "svc", "empty")
	check(t, "Get empty", got, item("empty", "", map[string]string{"k": "v"}))
	checkList(t, "List empty", mustList(t, b, "svc", "", nil), []backend.Item{item("empty", "", map[string]string{"k": "v"})})
}

// testOddValue covers every ASCII control byte including NUL, JSON-special
// characters and multi-byte runes: all valid UTF-8, all legal protocol values.
func testOddValue(t *testing.T, b backend.Backend) {
	var sb strings.Builder
	for c := 0; c < 0x80; c++ {
		sb.WriteByte(byte(c))
	}
	sb.WriteString(`"\u0000\\"` + "\u2028\u2029\uFEFF\U0010FFFF ߿ 𝄞")
	want := item("odd", sb.String(), map[string]string{"quote\"key": "tab\tnew\nline"})
	mustSet(t, b, "svc", want)
	check(t, "Get odd", mustGet(t, b, "svc", "odd"), want)
}

func testList(t *testing.T, b backend.Backend) {
	prod := map[string]string{"env": "prod", "team": "a"}
	dev := map[string]string{"env": "dev", "team": "a"}
	// Stored out of order; List must sort by target.
	mustSet(t, b, "svc",
		item("db/replica", "r", prod),
		item("api/key", "k", dev),
		item("db/primary", "p", prod),
		item("db", "d", dev),
		item("zeta", "z", nil),
	)
	mustSet(t, b, "other", item("db/primary", "other-p", prod))
	all := []backend.Item{
		item("api/key", "k", dev),
		item("db", "d", dev),
		item("db/primary", "p", prod),
		item("db/replica", "r", prod),
		item("zeta", "z", nil),
	}
	checkList(t, `List ""`, mustList(t, b, "svc", "", nil), all)
	checkList(t, `List "" with empty filter`, mustList(t, b, "svc", "", map[string]string{}), all)
	checkList(t, `List "db"`, mustList(t, b, "svc", "db", nil), all[1:4])
	checkList(t, `List "db/"`, mustList(t, b, "svc", "db/", nil), all[2:4])
	checkList(t, `List "db/primary" (exact name as prefix)`, mustList(t, b, "svc", "db/primary", nil), all[2:3])
	checkList(t, `List "nope"`, mustList(t, b, "svc", "nope", nil), nil)
	checkList(t, `List env=prod`, mustList(t, b, "svc", "", map[string]string{"env": "prod"}), all[2:4])
	checkList(t, `List team=a`, mustList(t, b, "svc", "", map[string]string{"team": "a"}), all[:4])
	checkList(t, `List env=prod,team=a`, mustList(t, b, "svc", "", prod), all[2:4])
	checkList(t, `List env=prod,team=b`, mustList(t, b, "svc", "", map[string]string{"env": "prod", "team": "b"}), nil)
	checkList(t, `List "d" + env=dev`, mustList(t, b, "svc", "d", map[string]string{"env": "dev"}), all[1:2])
	checkList(t, `List "api" + env=prod`, mustList(t, b, "svc", "api", map[string]string{"env": "prod"}), nil)
	checkList(t, `List absent service`, mustList(t, b, "sv", "", nil), nil)
}

// testServiceIsolation guards against backends that key items by a plain
// concatenation of service and target.
func testServiceIsolation(t *testing.T, b backend.Backend) {
	a := item("bc", "in a", map[string]string{"owner": "a"})
	ab := item("c", "in ab", map[string]string{"owner": "ab"})
	mustSet(t, b, "a", a)
	mustSet(t, b, "ab", ab)
	check(t, `Get("a","bc")`, mustGet(t, b, "a", "bc"), a)
	check(t, `Get("ab","c")`, mustGet(t, b, "ab", "c"), ab)
	wantNotFound(t, b, "a", "c")
	wantNotFound(t, b, "ab", "bc")
	wantNotFound(t, b, "abc", "")
	checkList(t, `List("a","")`, mustList(t, b, "a", "", nil), []backend.Item{a})
	checkList(t, `List("ab","")`, mustList(t, b, "ab", "", nil), []backend.Item{ab})
	checkList(t, `List("a","c")`, mustList(t, b, "a", "c", nil), nil)
	checkList(t, `List("a","b")`, mustList(t, b, "a", "b", nil), []backend.Item{a})
	checkList(t, `List("ab","b")`, mustList(t, b, "ab", "b", nil), nil)

	// The same target in two services is two items.
	x1, x2 := item("x", "one", nil), item("x", "two", nil)
	mustSet(t, b, "a", x1)
	mustSet(t, b, "ab", x2)
	check(t, `Get("a","x")`, mustGet(t, b, "a", "x"), x1)
	check(t, `Get("ab","x")`, mustGet(t, b, "ab", "x"), x2)
	if err := b.Delete(t.Context(), "a", []string{"x"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	check(t, `Get("ab","x") after deleting ("a","x")`, mustGet(t, b, "ab", "x"), x2)
}

func testDelete(t *testing.T, b backend.Backend) {
	mustSet(t, b, "svc", item("a", "1", nil), item("b", "2", nil), item("c", "3", nil))
	if err := b.Delete(t.Context(), "svc", []string{"a", "absent", "c"}); err != nil {
		t.Fatalf("Delete with an absent target: %v (absent targets must be ignored)", err)
	}
	wantNotFound(t, b, "svc", "a")
	wantNotFound(t, b, "svc", "c")
	checkList(t, "List after Delete", mustList(t, b, "svc", "", nil), []backend.Item{item("b", "2", nil)})
	if err := b.Delete(t.Context(), "svc", []string{"absent", "a"}); err != nil {
		t.Errorf("Delete of only absent targets: %v", err)
	}
	if err := b.Delete(t.Context(), "nosuchservice", []string{"b"}); err != nil {
		t.Errorf("Delete in an absent service: %v", err)
	}
	check(t, "Get survivor", mustGet(t, b, "svc", "b"), item("b", "2", nil))
	// A deleted target can be written again.
	mustSet(t, b, "svc", item("a", "again", nil))
	check(t, "Get re-created", mustGet(t, b, "svc", "a"), item("a", "again", nil))
}

func testBatch50(t *testing.T, b backend.Backend) {
	want := make([]backend.Item, 50)
	for i := range want {
		want[i] = item(fmt.Sprintf("t%02d", i), fmt.Sprintf("value-%d", i), map[string]string{"n": fmt.Sprint(i)})
	}
	mustSet(t, b, "svc", want...)
	for _, w := range want {
		check(t, "Get "+w.Target, mustGet(t, b, "svc", w.Target), w)
	}
	checkList(t, "List 50", mustList(t, b, "svc", "", nil), want)
	del := make([]string, 0, 25)
	for i := 0; i < 50; i += 2 {
		del = append(del, want[i].Target)
	}
	if err := b.Delete(t.Context(), "svc", del); err != nil {
		t.Fatalf("Delete 25: %v", err)
	}
	var odd []backend.Item
	for i := 1; i < 50; i += 2 {
		odd = append(odd, want[i])
	}
	checkList(t, "List after deleting evens", mustList(t, b, "svc", "", nil), odd)
}

func injector(t *testing.T, b backend.Backend) backend.FaultInjector {
	t.Helper()
	fi, ok := b.(backend.FaultInjector)
	if !ok {
		// Every backend in this repository implements it; one that does not
		// has no verified rollback, which CI must not let pass.
		if os.Getenv("CI") == "true" {
			t.Fatalf("%T does not implement backend.FaultInjector, so batch rollback cannot be verified", b)
		}
		t.Skipf("SKIPPED: %T does not implement backend.FaultInjector, so batch rollback is NOT verified for it", b)
	}
	return fi
}

func seedFive(t *testing.T, b backend.Backend) []backend.Item {
	old := make([]backend.Item, 5)
	for i := range old {
		old[i] = item(fmt.Sprintf("p%d", i), fmt.Sprintf("old-%d", i), map[string]string{"gen": "old", "i": fmt.Sprint(i)})
	}
	mustSet(t, b, "svc", old...)
	return old
}

func testSetRollback(t *testing.T, b backend.Backend) {
	fi := injector(t, b)
	old := seedFive(t, b)
	mustSet(t, b, "bystander", item("p0", "untouched", nil))

	// Overwrites and creations interleaved, so that by the failing op 6 the
	// batch has replaced three items and created two.
	var batch []backend.Item
	for i := range 5 {
		batch = append(batch,
			item(fmt.Sprintf("p%d", i), fmt.Sprintf("new-%d", i), map[string]string{"gen": "new"}),
			item(fmt.Sprintf("n%d", i), fmt.Sprintf("created-%d", i), map[string]string{"gen": "new"}))
	}
	injected := errors.New("injected set fault")
	fi.InjectFault(5, injected)
	err := b.Set(t.Context(), "svc", batch)
	if err == nil {
		t.Fatal("Set with a fault injected at op 6 succeeded")
	}
	if !errors.Is(err, injected) {
		t.Errorf("Set error = %v, want it to wrap the injected error", err)
	}
	checkList(t, "List after failed Set", mustList(t, b, "svc", "", nil), old)
	for _, it := range old {
		check(t, "Get after failed Set", mustGet(t, b, "svc", it.Target), it)
	}
	for i := range 5 {
		wantNotFound(t, b, "svc", fmt.Sprintf("n%d", i))
	}
	check(t, "other service after failed Set", mustGet(t, b, "bystander", "p0"), item("p0", "untouched", nil))

	// The fault is one-shot: the same batch now goes through.
	mustSet(t, b, "svc", batch...)
	for _, it := range batch {
		check(t, "Get after retried Set", mustGet(t, b, "svc", it.Target), it)
	}

	// A fault on the very first mutation changes nothing either.
	fi.InjectFault(0, injected)
	if err := b.Set(t.Context(), "svc", []backend.Item{item("p0", "x", nil)}); !errors.Is(err, injected) {
		t.Errorf("Set with a fault at op 1 = %v, want the injected error", err)
	}
	check(t, "Get after failed single Set", mustGet(t, b, "svc", "p0"), batch[0])
}

func testDeleteRollback(t *testing.T, b backend.Backend) {
	fi := injector(t, b)
	old := seedFive(t, b)
	injected := errors.New("injected delete fault")
	fi.InjectFault(2, injected)
	err := b.Delete(t.Context(), "svc", []string{"p0", "absent", "p1", "p2", "p3"})
	if err == nil {
		t.Fatal("Delete with a fault injected at op 3 succeeded")
	}
	if !errors.Is(err, injected) {
		t.Errorf("Delete error = %v, want it to wrap the injected error", err)
	}
	checkList(t, "List after failed Delete", mustList(t, b, "svc", "", nil), old)
	for _, it := range old {
		check(t, "Get after failed Delete", mustGet(t, b, "svc", it.Target), it)
	}
	if err := b.Delete(t.Context(), "svc", []string{"p0", "p1"}); err != nil {
		t.Fatalf("Delete after the fault fired: %v (faults are one-shot)", err)
	}
	checkList(t, "List after retried Delete", mustList(t, b, "svc", "", nil), old[2:])
}

// testConcurrent has 16 goroutines each own some targets (whose state they can
// predict exactly) and share others (where any complete write may win, but an
// item must never mix one writer's value with another's attributes).
func testConcurrent(t *testing.T, b backend.Backend) {
	const (
		workers = 16
		rounds  = 12
		shared  = 3
	)
	ctx := t.Context()
	final := make([]map[string]string, workers)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			owner := fmt.Sprintf("w%02d", g)
			prefix := "own-" + owner + "-"
			live := map[string]string{}
			defer func() { final[g] = live }()
			for i := range rounds {
				// i%3 against i%4 makes deletes hit both present and
				// absent own targets.
				own := fmt.Sprintf("%s%d", prefix, i%3)
				sh := fmt.Sprintf("shared-%d", (g+i)%shared)
				val := fmt.Sprintf("%s-%d", owner, i)
				switch i % 4 {
				case 0, 1:
					err := b.Set(ctx, "svc", []backend.Item{
						item(own, val, map[string]string{"owner": owner}),
						item(sh, val, map[string]string{"owner": owner, "check": val}),
					})
					if err != nil {
						t.Errorf("%s: Set: %v", owner, err)
						return
					}
					live[own] = val
				case 2:
					if err := b.Delete(ctx, "svc", []string{own, sh}); err != nil {
						t.Errorf("%s: Delete: %v", owner, err)
						return
					}
					delete(live, own)
				case 3:
					items, err := b.List(ctx, "svc", "shared-", nil)
					if err != nil {
						t.Errorf("%s: List shared: %v", owner, err)
						return
					}
					for j, it := range items {
						if it.Attributes["check"] != string(it.Value) {
							t.Errorf("%s: shared item %s has a value and attributes from different writes", owner, it.Target)
						}
						if j > 0 && items[j-1].Target >= it.Target {
							t.Errorf("%s: List not sorted: %q before %q", owner, items[j-1].Target, it.Target)
						}
					}
				}
				for target, want := range live {
					got, err := b.Get(ctx, "svc", target)
					if err != nil {
						t.Errorf("%s: Get own %s: %v", owner, target, err)
					} else if string(got.Value) != want {
						t.Errorf("%s: Get own %s returned another write's value", owner, target)
					}
				}
				got, err := b.Get(ctx, "svc", sh)
				switch {
				case errors.Is(err, backend.ErrNotFound):
				case err != nil:
					t.Errorf("%s: Get shared %s: %v", owner, sh, err)
				case got.Attributes["check"] != string(got.Value):
					t.Errorf("%s: shared item %s has a value and attributes from different writes", owner, sh)
				}
				mine, err := b.List(ctx, "svc", prefix, map[string]string{"owner": owner})
				if err != nil {
					t.Errorf("%s: List own: %v", owner, err)
					return
				}
				if len(mine) != len(live) {
					t.Errorf("%s: List own returned %v, want %d items", owner, targets(mine), len(live))
				}
				for _, it := range mine {
					if live[it.Target] != string(it.Value) {
						t.Errorf("%s: List own: %s has an unexpected value", owner, it.Target)
					}
				}
			}
		})
	}
	wg.Wait()
	for g := range workers {
		prefix := fmt.Sprintf("own-w%02d-", g)
		items := mustList(t, b, "svc", prefix, nil)
		// Round 10 deleted target 1; targets 0 and 2 were last written in
		// rounds 9 and 8.
		if got := targets(items); len(got) != 2 || got[0] != prefix+"0" || got[1] != prefix+"2" {
			t.Errorf("after the run, worker %d owns %v, want [%s0 %s2]", g, got, prefix, prefix)
			continue
		}
		for _, it := range items {
			if final[g][it.Target] != string(it.Value) {
				t.Errorf("after the run, worker %d's %s holds another write's value", g, it.Target)
			}
		}
	}
}

func testCancelled(t *testing.T, b backend.Backend) {
	mustSet(t, b, "svc", item("present", "v", nil))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wantCanceled := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with a cancelled context succeeded", op)
		} else if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want it to wrap context.Canceled", op, err)
		}
	}
	_, err := b.Get(ctx, "svc", "present")
	wantCanceled("Get", err)
	_, err = b.List(ctx, "svc", "", nil)
	wantCanceled("List", err)
	wantCanceled("Set", b.Set(ctx, "svc", []backend.Item{item("new", "v", nil)}))
	wantCanceled("Delete", b.Delete(ctx, "svc", []string{"present"}))
	wantNotFound(t, b, "svc", "new")
	check(t, "Get after cancelled Delete", mustGet(t, b, "svc", "present"), item("present", "v", nil))
}

func testClosed(t *testing.T, b backend.Backend) {
	mustSet(t, b, "svc", item("present", "v", nil))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	if _, err := b.Get(ctx, "svc", "present"); err == nil {
		t.Error("Get after Close succeeded")
	} else if errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get after Close = %v; a closed store must not claim the item is absent", err)
	}
	if _, err := b.List(ctx, "svc", "", nil); err == nil {
		t.Error("List after Close succeeded")
	}
	if err := b.Set(ctx, "svc", []backend.Item{item("x", "v", nil)}); err == nil {
		t.Error("Set after Close succeeded")
	}
	if err := b.Delete(ctx, "svc", []string{"present"}); err == nil {
		t.Error("Delete after Close succeeded")
	}
	_ = b.Close() // must not panic; the result is the backend's choice
}

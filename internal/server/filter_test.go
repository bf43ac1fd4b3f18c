package server

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/backend/memory"
	"github.com/The-17/keychain-auth/protocol"
)

// multiGetter adds GetMany to a backend, so the daemon takes its batch
// path for exact reads.
type multiGetter struct{ backend.Backend }

func (m multiGetter) GetMany(ctx context.Context, service string, targets []string) ([]backend.Item, error) {
	var out []backend.Item
	for _, t := range targets {
		it, err := m.Get(ctx, service, t)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// An exact read, search or delete with attributes acts only on the items
// that carry every given pair; the others count as missing, their values
// are not returned. Both ways the daemon fetches exact targets are covered.
func TestAttributesFilterExactRequests(t *testing.T) {
	for name, be := range map[string]backend.Backend{
		"one by one": memory.New(),
		"batch":      multiGetter{memory.New()},
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, be, &grant{read: []string{"svc"}, write: []string{"svc"}, search: true})
			c := ts.dial(t)
			write := func(target, env string) {
				b, _ := json.Marshal(map[string]any{"type": "REQUEST", "action": "write", "service": "svc",
					"targets": []string{target}, "values": []string{"v-" + target}, "attributes": map[string]string{"env": env}})
				mustStatus(t, c.roundTrip(string(b)), protocol.StatusSuccess, "")
			}
			write("a", "prod")
			write("b", "dev")
			exact := func(action string, targets ...string) protocol.Response {
				b, _ := json.Marshal(map[string]any{"type": "REQUEST", "action": action, "service": "svc", "match": "exact",
					"targets": targets, "attributes": map[string]string{"env": "prod"}})
				r := c.roundTrip(string(b))
				mustStatus(t, r, protocol.StatusSuccess, "")
				return r
			}
			for _, targets := range [][]string{{"a", "b"}, {"b", "a"}} {
				r := exact("read", targets...)
				if len(r.Results) != 1 || r.Results[0].Target != "a" || !slices.Equal(r.Missing, []string{"b"}) {
					t.Errorf("read %v with env=prod: results %+v, missing %v; want a, missing b", targets, r.Results, r.Missing)
				}
			}
			if r := exact("read", "b"); len(r.Results) != 0 || !slices.Equal(r.Missing, []string{"b"}) {
				t.Errorf("read b with env=prod: results %+v, missing %v; want none, missing b", r.Results, r.Missing)
			}
			if r := exact("search", "a", "b"); len(r.Results) != 1 || r.Results[0].Target != "a" {
				t.Errorf("exact search with env=prod: %+v, want a only", r.Results)
			}
			if r := exact("delete", "a", "b"); !slices.Equal(r.Missing, []string{"b"}) {
				t.Errorf("delete with env=prod: missing %v, want b", r.Missing)
			}
			if _, err := be.Get(context.Background(), "svc", "b"); err != nil {
				t.Errorf("delete filtered by env=prod removed b (env=dev): %v", err)
			}
		})
	}
}

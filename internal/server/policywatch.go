package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/config"
)

// DefaultConfigPoll is how often an idle daemon looks at config.json, so
// that an edit is recorded even when no request arrives to notice it.
const DefaultConfigPoll = time.Second

// configWatch turns config.json changes into policy_change records. Every
// read of the config in the daemon goes through it, so a change is recorded
// before the first decision made under it, and a change whose record could
// not be written is not used until it is.
type configWatch struct {
	mu      sync.Mutex
	started bool
	// described is the last usable config a record (or the start) covered;
	// changes are reported against it.
	described *config.Config
	// unrecorded: the config changed since and no record says so yet.
	unrecorded bool
}

// loadConfig returns the current config, or why it is unusable (cfgErr).
// auditErr is set when a change could not be recorded; the caller must
// refuse the request, as for any other audit failure.
func (s *Server) loadConfig(ctx context.Context) (cfg *config.Config, cfgErr, auditErr error) {
	w := &s.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	cfg, prev, changed, cfgErr := s.opts.Config.GetChanged()
	if !w.started {
		// The first look is the baseline; if someone else looked first
		// (the start command), changed covers the edits since then.
		w.started = true
		w.described = cfg
		if changed {
			w.described = prev
		}
	}
	if changed {
		w.unrecorded = true
	}
	if !w.unrecorded {
		return cfg, cfgErr, nil
	}
	if s.opts.Audit != nil {
		rec := policyChange(w.described, cfg, cfgErr)
		if err := s.opts.Audit.Log(ctx, rec); err != nil {
			s.log.Error("cannot record a change of config.json; refusing requests until it is recorded", "err", err)
			return nil, nil, err
		}
		s.log.Info("config.json changed", "change", rec.Message)
	}
	w.unrecorded = false
	if cfgErr == nil {
		w.described = cfg
	}
	return cfg, cfgErr, nil
}

// watchConfig looks at config.json every poll until ctx is done.
func (s *Server) watchConfig(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.loadConfig(ctx)
		}
	}
}

// privileges are what an entry grants, as a policy_change shows them.
type privileges struct {
	Read      []string `json:"read"`
	Write     []string `json:"write"`
	CanSearch bool     `json:"can_search"`
	UIDs      []uint32 `json:"uids,omitempty"`
}

type entrySummary struct {
	Hash string `json:"hash"`
	Path string `json:"path"`
	privileges
}

type entryChange struct {
	Hash   string     `json:"hash"`
	Path   string     `json:"path"`
	Before privileges `json:"before"`
	After  privileges `json:"after"`
}

type policyDiff struct {
	Entries int            `json:"entries"`
	Added   []entrySummary `json:"added"`
	Removed []entrySummary `json:"removed"`
	Changed []entryChange  `json:"changed"`
	Backend *struct {
		Before string `json:"before"`
		After  string `json:"after"`
	} `json:"backend,omitempty"`
	// Error is why the new config is unusable (every request is then refused).
	Error string `json:"error,omitempty"`
}

func privsOf(e config.Entry) privileges {
	sorted := func(s []string) []string {
		out := append([]string{}, s...)
		slices.Sort(out)
		return out
	}
	return privileges{Read: sorted(e.AllowedReadServices), Write: sorted(e.AllowedWriteServices),
		CanSearch: e.CanSearch, UIDs: e.UIDs}
}

// entryKeys indexes entries by hash and path; a repeated pair gets a
// counter so that each entry is compared with its counterpart.
func entryKeys(c *config.Config) map[string]config.Entry {
	out := map[string]config.Entry{}
	if c == nil {
		return out
	}
	for _, e := range c.Binaries {
		k := e.Hash + "\x00" + e.Path
		for i := 2; ; i++ {
			if _, dup := out[k]; !dup {
				break
			}
			k = e.Hash + "\x00" + e.Path + "\x00" + strconv.Itoa(i)
		}
		out[k] = e
	}
	return out
}

// policyChange describes the move from before to after (or to an unusable
// config, cfgErr) as a record.
func policyChange(before, after *config.Config, cfgErr error) audit.Record {
	d := policyDiff{Added: []entrySummary{}, Removed: []entrySummary{}, Changed: []entryChange{}}
	rec := audit.Record{Event: audit.EventPolicyChange}
	if cfgErr != nil {
		d.Error = cfgErr.Error()
		rec.Message = "config.json became unusable; every request is refused until it is fixed"
	} else {
		d.Entries = len(after.Binaries)
		old, cur := entryKeys(before), entryKeys(after)
		for k, e := range cur {
			o, ok := old[k]
			switch {
			case !ok:
				d.Added = append(d.Added, entrySummary{e.Hash, e.Path, privsOf(e)})
			case !samePrivileges(privsOf(o), privsOf(e)):
				d.Changed = append(d.Changed, entryChange{e.Hash, e.Path, privsOf(o), privsOf(e)})
			}
		}
		for k, e := range old {
			if _, ok := cur[k]; !ok {
				d.Removed = append(d.Removed, entrySummary{e.Hash, e.Path, privsOf(e)})
			}
		}
		byEntry := func(a, b entrySummary) int { return cmp.Or(cmp.Compare(a.Hash, b.Hash), cmp.Compare(a.Path, b.Path)) }
		slices.SortFunc(d.Added, byEntry)
		slices.SortFunc(d.Removed, byEntry)
		slices.SortFunc(d.Changed, func(a, b entryChange) int {
			return cmp.Or(cmp.Compare(a.Hash, b.Hash), cmp.Compare(a.Path, b.Path))
		})
		if before != nil && before.Backend != after.Backend {
			d.Backend = &struct {
				Before string `json:"before"`
				After  string `json:"after"`
			}{before.Backend, after.Backend}
		}
		rec.Message = fmt.Sprintf("config.json changed: %d added, %d removed, %d changed (%d registered)",
			len(d.Added), len(d.Removed), len(d.Changed), d.Entries)
	}
	rec.Details, _ = json.Marshal(d)
	return rec
}

func samePrivileges(a, b privileges) bool {
	return slices.Equal(a.Read, b.Read) && slices.Equal(a.Write, b.Write) && a.CanSearch == b.CanSearch &&
		slices.Equal(a.UIDs, b.UIDs)
}

package config

import (
	"slices"
	"time"
)

// FindByHash returns the indexes of the entries registered with hash.
func (c *Config) FindByHash(hash string) []int {
	return c.find(func(e *Entry) bool { return e.Hash == hash })
}

// FindByPath returns the indexes of the entries registered at path. Paths
// compare exactly; callers pass a resolved path, as the entries hold.
func (c *Config) FindByPath(path string) []int {
	return c.find(func(e *Entry) bool { return e.Path == path })
}

func (c *Config) find(match func(*Entry) bool) []int {
	var out []int
	for i := range c.Binaries {
		if match(&c.Binaries[i]) {
			out = append(out, i)
		}
	}
	return out
}

// Hashes returns the distinct registered hashes, sorted, for ResolveHash.
func (c *Config) Hashes() []string {
	out := make([]string, 0, len(c.Binaries))
	for _, e := range c.Binaries {
		out = append(out, e.Hash)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Remove deletes the entries for which match is true and returns them.
func (c *Config) Remove(match func(Entry) bool) []Entry {
	var removed []Entry
	c.Binaries = slices.DeleteFunc(c.Binaries, func(e Entry) bool {
		if match(e) {
			removed = append(removed, e)
			return true
		}
		return false
	})
	return removed
}

// Upgrade moves the policy of every entry registered at path to newHash and
// stamps it with upgraded_at = now. It returns how many entries moved; 0
// means path is not registered. Entries that already have newHash are left
// alone (nothing to upgrade).
func (c *Config) Upgrade(path, newHash string, now time.Time) int {
	n := 0
	for i := range c.Binaries {
		e := &c.Binaries[i]
		if e.Path != path || e.Hash == newHash {
			continue
		}
		e.Hash = newHash
		t := now.UTC()
		e.UpgradedAt = &t
		n++
	}
	return n
}

// Grant adds service patterns and, if search is true, the search privilege.
// Patterns already present are not repeated; order is kept, new ones are
// appended. It reports whether anything changed.
func (e *Entry) Grant(read, write []string, search bool) bool {
	changed := false
	add := func(list []string, more []string) []string {
		for _, s := range more {
			if !slices.Contains(list, s) {
				list = append(list, s)
				changed = true
			}
		}
		return list
	}
	e.AllowedReadServices = add(e.AllowedReadServices, read)
	e.AllowedWriteServices = add(e.AllowedWriteServices, write)
	if search && !e.CanSearch {
		e.CanSearch = true
		changed = true
	}
	return changed
}

// Revoke removes exactly the given patterns (a pattern is not expanded: revoking
// "aws" leaves "aws-*") and, if search is true, the search privilege. It
// reports whether anything changed.
func (e *Entry) Revoke(read, write []string, search bool) bool {
	changed := false
	drop := func(list []string, less []string) []string {
		return slices.DeleteFunc(list, func(s string) bool {
			if slices.Contains(less, s) {
				changed = true
				return true
			}
			return false
		})
	}
	e.AllowedReadServices = drop(e.AllowedReadServices, read)
	e.AllowedWriteServices = drop(e.AllowedWriteServices, write)
	if search && e.CanSearch {
		e.CanSearch = false
		changed = true
	}
	return changed
}

// RevokeAll leaves the entry registered with no privileges (check only).
func (e *Entry) RevokeAll() bool {
	changed := len(e.AllowedReadServices) > 0 || len(e.AllowedWriteServices) > 0 || e.CanSearch
	e.AllowedReadServices, e.AllowedWriteServices, e.CanSearch = []string{}, []string{}, false
	return changed
}

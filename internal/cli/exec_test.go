package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestEnvName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"db/user":      "DB_USER",
		"api-key":      "API_KEY",
		"Mixed.Case_1": "MIXED_CASE_1",
		"9lives":       "_9LIVES",
		"é":            "_",
	} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseExecFlags(t *testing.T) {
	t.Parallel()
	m, err := parseExecFlags(execFlags{service: "s", env: []string{"A=a", "B=x=y"}})
	if err != nil || !slices.Equal(m, []envMapping{{"A", "a"}, {"B", "x=y"}}) {
		t.Fatalf("got %v, %v", m, err)
	}
	for _, tc := range []struct {
		f    execFlags
		text string
	}{
		{execFlags{env: []string{"A=a"}}, "--service"},
		{execFlags{service: "s"}, "--env NAME=target or --prefix"},
		{execFlags{service: "s", env: []string{"A=a"}, prefixSet: true}, "not both"},
		{execFlags{service: "s", prefixSet: true, requireAll: true}, "--require-all"},
		{execFlags{service: "s", env: []string{"A"}}, "NAME=target"},
		{execFlags{service: "s", env: []string{"=a"}}, "NAME=target"},
		{execFlags{service: "s", env: []string{"A="}}, "NAME=target"},
		{execFlags{service: "s", env: []string{"A=a", "A=b"}}, "twice"},
		{execFlags{service: "s", env: []string{"LD_PRELOAD=a"}}, "dynamic loader variable"},
	} {
		_, err := parseExecFlags(tc.f)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%+v: got %v, want a usage error saying %q", tc.f, err, tc.text)
		}
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	got := childEnv([]string{"PATH=/bin", "A=old", "B=keep"}, map[string]string{"A": "new", "C": "c"})
	want := []string{"PATH=/bin", "B=keep", "A=new", "C=c"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"paradrop/api"
	"paradrop/api/apitest"
	"paradrop/chute"
	"paradrop/store"
)

// cliFixture runs CLI commands in-process against the real API handler
// over an in-memory fake manager.
type cliFixture struct {
	fake   *apitest.Fake
	srv    *httptest.Server
	env    *cliEnv
	vars   map[string]string
	stdout *syncBuffer
	stderr *syncBuffer
}

// syncBuffer lets a test read output that a command is still writing.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	pollInterval = 5 * time.Millisecond
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "paradrop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, _, err := api.EnsureOperatorToken(db, dir); err != nil {
		t.Fatal(err)
	}
	fake := apitest.New()
	srv := httptest.NewServer(api.New(api.Config{Chutes: fake, DB: db, Started: time.Now(), MaxUpload: 1 << 20}))
	t.Cleanup(srv.Close)
	f := &cliFixture{
		fake: fake, srv: srv, stdout: &syncBuffer{}, stderr: &syncBuffer{},
		vars: map[string]string{"PARADROP_SERVER": srv.URL, "PARADROP_DATA": dir},
	}
	f.env = &cliEnv{
		stdin: strings.NewReader(""), stdout: f.stdout, stderr: f.stderr,
		getenv: func(k string) string { return f.vars[k] },
	}
	return f
}

// run runs a top-level command's entry point with fresh output buffers.
func (f *cliFixture) run(main func(*cliEnv, []string) int, args ...string) int {
	f.stdout.Reset()
	f.stderr.Reset()
	return main(f.env, args)
}

// oneLine fails unless stderr is exactly one line starting with prefix.
func (f *cliFixture) oneLine(t *testing.T, prefix string) {
	t.Helper()
	got := f.stderr.String()
	if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") || !strings.HasPrefix(got, prefix) {
		t.Errorf("stderr = %q, want one line starting %q", got, prefix)
	}
}

func TestCLIToken(t *testing.T) {
	f := newCLIFixture(t)
	f.fake.Add(chute.Info{Name: "web"})
	if rc := f.run(chuteMain, "list"); rc != 0 {
		t.Fatalf("token from the data dir's file: rc %d, %s", rc, f.stderr)
	}

	f.vars["PARADROP_TOKEN"] = "wrong"
	if rc := f.run(chuteMain, "list"); rc != 1 {
		t.Errorf("wrong token: rc %d", rc)
	}
	f.oneLine(t, "paradrop: list: invalid token")

	tok, err := os.ReadFile(filepath.Join(f.vars["PARADROP_DATA"], api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if rc := f.run(chuteMain, "list", "--token", strings.TrimSpace(string(tok))); rc != 0 {
		t.Errorf("--token beats the environment: rc %d, %s", rc, f.stderr)
	}

	delete(f.vars, "PARADROP_TOKEN")
	f.vars["PARADROP_DATA"] = t.TempDir()
	if rc := f.run(chuteMain, "list"); rc != 1 {
		t.Errorf("no token file: rc %d", rc)
	}
	f.oneLine(t, "paradrop: list: operator token: open ")
	if !strings.Contains(f.stderr.String(), "--token") {
		t.Errorf("no hint at --token: %s", f.stderr)
	}
}

func TestCLIServerDown(t *testing.T) {
	f := newCLIFixture(t)
	f.srv.Close()
	if rc := f.run(chuteMain, "info", "web"); rc != 1 {
		t.Errorf("rc %d", rc)
	}
	f.oneLine(t, "paradrop: info: daemon at "+f.srv.URL+": ")

	f.vars["PARADROP_SERVER"] = "localhost:8080"
	if rc := f.run(chuteMain, "list"); rc != 2 {
		t.Errorf("bad server URL: rc %d", rc)
	}
	f.oneLine(t, "paradrop: list: server \"localhost:8080\"")
}

func TestCLIParseArgs(t *testing.T) {
	tests := []struct {
		args     []string
		operands []string
		yes      bool
	}{
		{[]string{"web", "--yes"}, []string{"web"}, true},
		{[]string{"--yes", "web"}, []string{"web"}, true},
		{[]string{"web", "db"}, []string{"web", "db"}, false},
		{[]string{"--", "--yes", "-x"}, []string{"--yes", "-x"}, false},
		{[]string{"web", "--", "-db"}, []string{"web", "-db"}, false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		yes := fs.Bool("yes", false, "")
		got, err := parseArgs(&cliEnv{}, fs, "t", tt.args, 0, 5)
		if err != nil || !slices.Equal(got, tt.operands) || *yes != tt.yes {
			t.Errorf("%q: %q yes=%v %v, want %q yes=%v", tt.args, got, *yes, err, tt.operands, tt.yes)
		}
	}
}

func TestCLIRunCLIOneLine(t *testing.T) {
	f := newCLIFixture(t)
	fail := func(context.Context, *cliEnv, []string) error {
		return &apiError{status: 400, msg: "manifest:\n  line 3: bad"}
	}
	if rc := runCLI(f.env, "install", fail, nil); rc != 1 {
		t.Errorf("rc %d", rc)
	}
	f.oneLine(t, "paradrop: install: manifest: line 3: bad")

	f.stderr.Reset()
	named := func(context.Context, *cliEnv, []string) error { return errors.New("install: chute \"a\": exists") }
	runCLI(f.env, "install", named, nil)
	f.oneLine(t, "paradrop: install: chute \"a\": exists\n")
}

package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func TestCLIPasswordStdin(t *testing.T) {
	f := newCLIFixture(t)
	setPassword := func(input string, args ...string) int {
		f.env.stdin = strings.NewReader(input)
		return f.run(func(env *cliEnv, args []string) int {
			return runCLI(env, "password", func(ctx context.Context, env *cliEnv, args []string) error {
				return cmdPassword(ctx, env, nil, args)
			}, args)
		}, args...)
	}
	if rc := setPassword("short\n", "--stdin"); rc != 1 {
		t.Errorf("short password: rc %d, stderr %q", rc, f.stderr)
	}
	f.oneLine(t, "paradrop: password: password is 5 characters")
	if rc := setPassword("a long password\n"); rc != 2 {
		t.Errorf("no terminal and no --stdin: rc %d, want 2", rc)
	}
	if rc := setPassword("a long password\n", "--stdin"); rc != 0 {
		t.Fatalf("rc %d: %s", rc, f.stderr)
	}
	resp, err := http.Post(f.srv.URL+"/api/v1/login", "application/json", strings.NewReader(`{"password":"a long password"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("login with the new password: %s", resp.Status)
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"paradrop/api"
)

const (
	defaultServer  = "http://127.0.0.1:8080"
	defaultDataDir = "/var/lib/paradrop"
)

// cliEnv is everything a CLI command touches outside itself, so that tests
// can run commands in-process and read what they print.
type cliEnv struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	getenv    func(string) string
	stdinTTY  bool
	stderrTTY bool
}

func osEnv() *cliEnv {
	return &cliEnv{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		stdinTTY: isTerminal(os.Stdin), stderrTTY: isTerminal(os.Stderr),
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// usageError is the caller's mistake; it exits 2 rather than 1.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// runCLI runs one command, interruptible with ^C, and turns its error into
// a single line on stderr and the exit status: 0, 1 (it failed) or 2 (it
// was called wrongly).
func runCLI(env *cliEnv, name string, fn func(context.Context, *cliEnv, []string) error, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := fn(ctx, env, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	// One line, whatever the server or the OS put in the message.
	msg := strings.Join(strings.Fields(err.Error()), " ")
	// The manager names the operation too ("restart: chute ..."): once is enough.
	msg = strings.TrimPrefix(msg, name+": ")
	fmt.Fprintf(env.stderr, "paradrop: %s: %s\n", name, msg)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// parseArgs parses fs's flags wherever they are among args (Go's flag
// package stops at the first operand, but people type `remove web --yes`)
// and checks the number of operands. usage is the synopsis after
// "paradrop ", for -h and for errors.
func parseArgs(env *cliEnv, fs *flag.FlagSet, usage string, args []string, minArgs, maxArgs int) ([]string, error) {
	fs.SetOutput(io.Discard) // errors are reported in one line by runCLI
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(env.stdout, "usage: paradrop %s\n", usage)
				fs.SetOutput(env.stdout)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usagef("%v (usage: paradrop %s)", err, usage)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			operands = append(operands, rest...)
			break
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
	if len(operands) < minArgs || len(operands) > maxArgs {
		return nil, usagef("usage: paradrop %s", usage)
	}
	return operands, nil
}

// clientOpts are the flags every client command takes. Empty values fall
// back to the environment, then to the defaults.
type clientOpts struct {
	server, token, data string
	fingerprint         string // of an https server's certificate, to pin
}

func addClientFlags(fs *flag.FlagSet) *clientOpts {
	o := &clientOpts{}
	fs.StringVar(&o.server, "server", "", "daemon URL (default $PARADROP_SERVER or "+defaultServer+")")
	fs.StringVar(&o.token, "token", "", "operator token (default $PARADROP_TOKEN or the token file in --data)")
	fs.StringVar(&o.data, "data", "", "daemon's data directory, for its token file (default $PARADROP_DATA or "+defaultDataDir+")")
	fs.StringVar(&o.fingerprint, "fingerprint", "", "SHA-256 fingerprint of an https server's certificate, pinned in place of the one seen first (see paradrop info)")
	return o
}

// parseArgs parses fs's flags and operands as parseArgs does, then makes
// the client, for commands with nothing to check in between.
func (o *clientOpts) parseArgs(env *cliEnv, fs *flag.FlagSet, usage string, args []string, minArgs, maxArgs int) ([]string, *client, error) {
	ops, err := parseArgs(env, fs, usage, args, minArgs, maxArgs)
	if err != nil {
		return nil, nil, err
	}
	c, err := o.client(env)
	if err != nil {
		return nil, nil, err
	}
	return ops, c, nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// client talks to the daemon's API.
type client struct {
	base  string
	token string
	hc    *http.Client
	pin   *gatewayPin // nil over plain HTTP
}

func (o *clientOpts) client(env *cliEnv) (*client, error) {
	base := strings.TrimRight(firstOf(o.server, env.getenv("PARADROP_SERVER"), defaultServer), "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("server %q: want a URL such as %s", base, defaultServer)
	}
	// No overall timeout: uploads and followed logs last as long as they
	// must, and ^C cancels through the context.
	c := &client{base: base, hc: &http.Client{}}
	switch {
	case u.Scheme == "https":
		if c.pin, err = newGatewayPin(env, u, o.fingerprint); err != nil {
			return nil, err
		}
		c.hc.Transport = c.pin.transport()
	case !isLoopbackHost(u.Hostname()):
		// The token would cross the network in the clear, and the daemon
		// serves only HTTPS there anyway.
		return nil, usagef("server %q: a gateway off loopback speaks HTTPS only: use https://%s", base, u.Host)
	case o.fingerprint != "":
		return nil, usagef("--fingerprint is for https servers; %s is plain HTTP on loopback", base)
	}
	token := firstOf(o.token, env.getenv("PARADROP_TOKEN"))
	if token == "" {
		path := filepath.Join(firstOf(o.data, env.getenv("PARADROP_DATA"), defaultDataDir), api.TokenFile)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("operator token: %w (pass --token or set PARADROP_TOKEN)", err)
		}
		token = strings.TrimSpace(string(raw))
	}
	c.token = token
	return c, nil
}

// apiError is an error answer from the daemon.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// open sends a request and returns the response if it is a success. size
// is the body's length, or -1 if unknown.
func (c *client) open(ctx context.Context, method, path string, q url.Values, body io.Reader, size int64) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its Op and URL repeat what we say below
		}
		return nil, fmt.Errorf("daemon at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		// net/http's answer to plain HTTP on a TLS listener (serve
		// --listen on every address serves HTTPS on loopback too).
		if strings.Contains(string(raw), "HTTP request to an HTTPS server") {
			e.Error = fmt.Sprintf("daemon at %s serves HTTPS there: use --server %s", c.base, strings.Replace(c.base, "http://", "https://", 1))
		}
	}
	return nil, &apiError{status: resp.StatusCode, msg: e.Error}
}

// call is open for JSON answers: it decodes the answer into out.
func (c *client) call(ctx context.Context, method, path string, q url.Values, body io.Reader, size int64, out any) error {
	resp, err := c.open(ctx, method, path, q, body, size)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

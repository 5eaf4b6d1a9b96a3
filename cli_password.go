package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func init() {
	register("password", command{
		summary: "set the operator password for the web UI's login",
		run: func(args []string) int {
			run := func(ctx context.Context, env *cliEnv, args []string) error {
				return cmdPassword(ctx, env, os.Stdin, args)
			}
			return runCLI(osEnv(), "password", run, args)
		},
	})
}

const passwordUsage = "password [--stdin] [--server URL] [--token TOKEN] [--data DIR]"

// cmdPassword asks the daemon (PUT /api/v1/password, operator token only)
// to store the new password's hash; the daemon owns the store while it
// runs, so the CLI never writes it. tty is the terminal to read from
// without echo; with --stdin the password is env.stdin's first line.
func cmdPassword(ctx context.Context, env *cliEnv, tty *os.File, args []string) error {
	fs := flag.NewFlagSet("password", flag.ContinueOnError)
	fromStdin := fs.Bool("stdin", false, "read the password from the first line of standard input")
	co := addClientFlags(fs)
	_, c, err := co.parseArgs(env, fs, passwordUsage, args, 0, 0)
	if err != nil {
		return err
	}
	var password string
	if *fromStdin {
		line, err := bufio.NewReader(env.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		if !env.stdinTTY {
			return usagef("standard input is not a terminal: pass --stdin to read the password from it")
		}
		first, err := readHidden(env, tty, "New password: ")
		if err != nil {
			return err
		}
		again, err := readHidden(env, tty, "Repeat it: ")
		if err != nil {
			return err
		}
		if first != again {
			return errors.New("the passwords differ; nothing changed")
		}
		password = first
	}
	body, err := json.Marshal(map[string]string{"password": password})
	if err != nil {
		return err
	}
	var answer struct {
		Status string `json:"status"`
	}
	if err := c.call(ctx, "PUT", "/api/v1/password", nil, bytes.NewReader(body), int64(len(body)), &answer); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, answer.Status)
	return nil
}

// readHidden prompts on stderr and reads a line from the terminal with its
// echo off, restoring the terminal's mode afterwards.
func readHidden(env *cliEnv, tty *os.File, prompt string) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(env.stderr, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	fmt.Fprintln(env.stderr) // the Enter the operator typed was not echoed
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"paradrop/tlscert"
)

// --follow-peer takes a peer a migration could go to (https pinned, http
// to loopback alone), needs the network, and --follow-hold a positive
// duration.
func TestServeFollowFlags(t *testing.T) {
	env := &cliEnv{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer)}
	fp := tlscert.Of([]byte("peer")).String()
	opts, err := parseServe(env, []string{"--follow-peer", "https://198.51.100.7:8443,/etc/pd/peer," + fp, "--follow-hold", "1m"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []followPeer{{"https://198.51.100.7:8443", "/etc/pd/peer", fp}}; len(opts.follow.peers) != 1 || opts.follow.peers[0] != want[0] || opts.follow.hold != time.Minute {
		t.Errorf("follow options %+v", opts.follow)
	}
	if opts, _ := parseServe(env, nil); opts.follow.hold != defaultFollowHold || len(opts.follow.peers) != 0 {
		t.Errorf("default follow options %+v", opts.follow)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--follow-peer", "https://198.51.100.7:8443"}, "URL,TOKEN_FILE"},
		{[]string{"--follow-peer", "https://198.51.100.7:8443,,"}, "URL,TOKEN_FILE"},
		{[]string{"--follow-peer", "a,b,c,d"}, "URL,TOKEN_FILE"},
		{[]string{"--follow-peer", "https://198.51.100.7:8443,/etc/pd/peer"}, "fingerprint"},
		{[]string{"--follow-peer", "http://198.51.100.7:8080,/etc/pd/peer"}, "plain http only to a loopback"},
		{[]string{"--follow-peer", "http://127.0.0.1:8080,/etc/pd/peer", "--network=false"}, "needs the network"},
		{[]string{"--follow-hold", "0s"}, "--follow-hold"},
	} {
		_, err := parseServe(env, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

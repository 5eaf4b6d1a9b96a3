package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"paradrop/usp/codec"
)

// agentRounds is how many times the daemon is measured with and without
// the agent, alternately: the median of each is compared.
const agentRounds = 3

// agentCost measures what the USP agent adds to the daemon's RSS: the
// same daemon (no chute) started without and with --usp-broker, each
// measured once settled, the agent's after it connected and answered a
// Get of the whole data model.
func agentCost(ctx context.Context, bin, dir, broker string) (without, with int64, err error) {
	var off, on []int64
	for i := range agentRounds {
		for _, agent := range []bool{false, true} {
			rss, err := daemonRSS(ctx, bin, filepath.Join(dir, fmt.Sprintf("agent-%d-%t", i, agent), "data"), broker, agent)
			if err != nil {
				return 0, 0, fmt.Errorf("daemon (agent %t): %w", agent, err)
			}
			if agent {
				on = append(on, rss)
			} else {
				off = append(off, rss)
			}
		}
	}
	median := func(v []int64) int64 { slices.Sort(v); return v[len(v)/2] }
	return median(off), median(on), nil
}

// daemonRSS starts a daemon, with the agent or not, and returns its RSS
// once settled.
func daemonRSS(ctx context.Context, bin, data, broker string, agent bool) (int64, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return 0, err
	}
	const agentID, ctrl = "os::bench-agent", "self::bench-agent-ctrl"
	var flags []string
	if agent {
		flags = []string{"--usp-broker", broker, "--usp-endpoint-id", agentID, "--usp-controller", ctrl + "=usp/controllers/bench-agent"}
	}
	d, err := startDaemonIn(ctx, bin, data, daemonCgroup+"-agent", flags...)
	if err != nil {
		return 0, err
	}
	defer d.stop()
	if agent {
		if err := askAgent(broker, agentID, ctrl); err != nil {
			return 0, err
		}
	}
	time.Sleep(3 * time.Second) // the daemon's start-up settled
	return vmRSS(d.pid())
}

// askAgent waits until the agent answers a Get of Device. from ctrl.
func askAgent(broker, agentID, ctrl string) error {
	got := make(chan struct{}, 1)
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("bench-agent-ctrl"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("controller: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	tok := cl.Subscribe("usp/controllers/bench-agent/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		if _, msg, err := codec.Unwrap(m.Payload(), ctrl, 1<<20); err == nil && msg.GetBody().GetResponse().GetGetResp() != nil {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("controller: %v", tok.Error())
	}
	req, err := codec.Wrap(&codec.Msg{Header: &codec.Header{MsgId: "bench-get", MsgType: codec.Header_GET},
		Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Get{Get: &codec.Get{ParamPaths: []string{"Device."}}}}}}},
		ctrl, agentID)
	if err != nil {
		return err
	}
	// The agent connects after its first backoff at worst: ask until it
	// answers.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		cl.Publish("usp/agents/"+agentID+"/reply-to=usp%2Fcontrollers%2Fbench-agent", 1, false, req)
		select {
		case <-got:
			return nil
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("the agent did not answer")
}

package mqttmtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"paradrop/internal/mosquitto"
)

// echo runs an endpoint on topic that answers every record with itself.
func echo(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- c.Run(ctx, func(ctx context.Context, m Message) {
			c.Publish(ctx, m.ReplyTo, m.Payload)
		}, nil)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "connected", func() bool { return c.Stats().Connects > 0 })
	return c
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

func TestEndpoint(t *testing.T) {
	b := mosquitto.Start(t)
	c := echo(t, Config{Broker: b.URL(), ClientID: "os::agent", Topic: "usp/agents/a", MaxPacket: 4096,
		Rate: 50, Burst: 20, Backoff: Backoff{Min: 50 * time.Millisecond, Multiplier: 2, Max: 200 * time.Millisecond}})
	got := make(chan mqtt.Message, 100)
	ctrl := b.Client(t, "ctrl", "usp/controllers/c/#", got)
	send := func(t *testing.T, topic string, payload []byte) {
		t.Helper()
		if tok := ctrl.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	roundTrip := func(t *testing.T, payload string) {
		t.Helper()
		send(t, "usp/agents/a/reply-to=usp%2Fcontrollers%2Fc", []byte(payload))
		for {
			select {
			case m := <-got:
				if string(m.Payload()) != payload {
					continue // a flood's late answer
				}
				if m.Topic() != "usp/controllers/c/reply-to=usp%2Fagents%2Fa" {
					t.Fatalf("answer on %q", m.Topic())
				}
				return
			case <-time.After(5 * time.Second):
				t.Fatalf("no answer to %q", payload)
			}
		}
	}
	roundTrip(t, "hello")

	t.Run("oversized publish skipped, session kept", func(t *testing.T) {
		send(t, "usp/agents/a/reply-to=usp%2Fcontrollers%2Fc", bytes.Repeat([]byte{'x'}, 1<<20))
		roundTrip(t, "after oversized")
		if s := c.Stats(); s.Oversized != 1 || s.Connects != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("no or hostile reply-to", func(t *testing.T) {
		send(t, "usp/agents/a", []byte("no reply-to"))
		send(t, "usp/agents/a/reply-to="+strings.Repeat("x", MaxTopic+1), []byte("too long"))
		roundTrip(t, "after hostile reply-to")
		if s := c.Stats(); s.NoReplyTo != 2 || s.Connects != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("flood bounded by the rate", func(t *testing.T) {
		before := c.Stats()
		start := time.Now()
		for i := range 2000 {
			ctrl.Publish("usp/agents/a/reply-to=usp%2Fcontrollers%2Fc", 0, false, fmt.Appendf(nil, "flood %d", i))
		}
		waitFor(t, "flood read", func() bool {
			s := c.Stats()
			return s.Received+s.Dropped-before.Received-before.Dropped >= 2000
		})
		s := c.Stats()
		allowed := 20 + 50*time.Since(start).Seconds() + 1
		if n := float64(s.Received - before.Received); n > allowed {
			t.Fatalf("%v records handed on in %v, rate allows %v", n, time.Since(start), allowed)
		}
		time.Sleep(time.Second / 2) // tokens back
		roundTrip(t, "after flood")
	})
	t.Run("broker restart", func(t *testing.T) {
		b.Restart()
		waitFor(t, "reconnected", func() bool { return c.Stats().Connects == 2 })
		ctrl = b.Client(t, "ctrl2", "usp/controllers/c/#", got)
		roundTrip(t, "after restart")
	})
}

// Over TLS the broker's certificate is verified and the endpoint logs in:
// with the wrong CA or the wrong password it never connects; with both
// right it does, and records flow.
func TestTLS(t *testing.T) {
	b := mosquitto.StartTLS(t, map[string]string{"gw": "s3cret"})
	pool, otherPool := x509.NewCertPool(), x509.NewCertPool()
	pem, err := os.ReadFile(b.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	other := mosquitto.StartTLS(t, nil) // another self-signed certificate
	pem, err = os.ReadFile(other.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	otherPool.AppendCertsFromPEM(pem)

	for _, tc := range []struct {
		name string
		pool *x509.CertPool
		pass string
	}{{"wrong CA", otherPool, "s3cret"}, {"system CAs", nil, "s3cret"}, {"wrong password", pool, "guess"}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Broker: b.TLSURL(), ClientID: "tls-" + tc.name, Topic: "usp/agents/tls", Username: "gw", Password: tc.pass,
				Backoff: Backoff{Min: 50 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2}}
			if tc.pool != nil {
				cfg.TLS = &tls.Config{RootCAs: tc.pool}
			}
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c.Run(ctx, func(context.Context, Message) {}, nil)
			if n := c.Stats().Connects; n != 0 {
				t.Errorf("%d connections", n)
			}
		})
	}
	c := echo(t, Config{Broker: b.TLSURL(), ClientID: "tls-ok", Topic: "usp/agents/tls", Username: "gw", Password: "s3cret",
		TLS: &tls.Config{RootCAs: pool}})
	got := make(chan mqtt.Message, 1)
	ctl := b.Client(t, "ctl", "usp/controllers/tls/#", got)
	ctl.Publish(WithReplyTo(c.Topic(), "usp/controllers/tls"), 1, false, []byte("over tls"))
	select {
	case m := <-got:
		if string(m.Payload()) != "over tls" {
			t.Errorf("got %q", m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo over TLS")
	}
}

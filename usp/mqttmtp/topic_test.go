package mqttmtp

import (
	"strings"
	"testing"
	"time"
)

func TestReplyTo(t *testing.T) {
	for _, tc := range []struct{ topic, want string }{
		{"usp/agents/a/reply-to=usp%2Fcontrollers%2Fc", "usp/controllers/c"},
		{"a/reply-to=x/reply-to=y%2Fz", "y/z"}, // the last one (R-MQTT.25)
		{"a/reply-to=c", "c"},
		{"a", ""},
		{"a/reply-to=", ""},
		{"a/reply-to=c%2F#", ""},        // a wildcard would get us disconnected
		{"a/reply-to=c%2F%23", "c/%23"}, // only %2F is decoded
		{"a/reply-to=c%2F+", ""},
		{"a/reply-to=c\x00", ""},
		{"a/reply-to=\xff", ""},
		{"a/reply-to=" + strings.Repeat("x", MaxTopic+1), ""},
	} {
		got, err := ReplyTo(tc.topic)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ReplyTo(%q) = %q, %v; want %q", tc.topic, got, err, tc.want)
		}
	}
	if got := WithReplyTo("usp/controllers/c", "usp/agents/a"); got != "usp/controllers/c/reply-to=usp%2Fagents%2Fa" {
		t.Errorf("WithReplyTo = %q", got)
	}
}

func FuzzReplyTo(f *testing.F) {
	f.Add("usp/agents/a/reply-to=usp%2Fcontrollers%2Fc")
	f.Add("a/reply-to=%2F%2F#")
	f.Fuzz(func(t *testing.T, topic string) {
		reply, err := ReplyTo(topic)
		if err != nil {
			return
		}
		if CheckTopic(reply) != nil {
			t.Fatalf("ReplyTo(%q) = %q, not publishable", topic, reply)
		}
		if back, err := ReplyTo("x" + replyToSep + strings.ReplaceAll(reply, "/", "%2F")); err != nil || back != reply {
			t.Fatalf("%q does not round-trip: %q, %v", reply, back, err)
		}
	})
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 5 * time.Second, Multiplier: 2, Max: time.Minute}
	for _, tc := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{1, 5 * time.Second, 10 * time.Second},
		{2, 10 * time.Second, 20 * time.Second},
		{4, 40 * time.Second, time.Minute},
		{5, time.Minute, time.Minute},
		{1000, time.Minute, time.Minute},
	} {
		if got := b.Wait(tc.n, 0); got != tc.lo {
			t.Errorf("Wait(%d, 0) = %v, want %v", tc.n, got, tc.lo)
		}
		if got := b.Wait(tc.n, 0.999999); got < tc.hi-time.Millisecond || got > tc.hi {
			t.Errorf("Wait(%d, 1) = %v, want %v", tc.n, got, tc.hi)
		}
	}
}

package usp

import (
	"testing"
	"time"

	"paradrop/usp/codec"
)

// A NotifyResp that comes while its notification is being sent (the
// controller answers before the broker's PUBACK reaches the agent) ends its
// retries: the send's return does not put it back.
func TestPendingAnsweredWhileSending(t *testing.T) {
	notify := func(id string) *waiting {
		return &waiting{o: outgoing{to: "ctrl", msg: &codec.Msg{Header: &codec.Header{MsgId: id},
			Body: &codec.Body{MsgBody: &codec.Body_Request{Request: &codec.Request{ReqType: &codec.Request_Notify{
				Notify: &codec.Notify{SendResp: true}}}}}}}}
	}
	const retry = time.Millisecond
	for _, tc := range []struct {
		name   string
		resent bool // answered during a retry, not the first send
		failed bool
	}{{"first send", false, false}, {"retry", true, false}, {"retry that failed", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPending()
			w := notify("n1")
			if tc.resent {
				if !p.trying(w) || p.sent(w, false, retry) {
					t.Fatal("first send refused")
				}
				time.Sleep(2 * retry)
				due := p.due(time.Now())
				if len(due) != 1 {
					t.Fatalf("due %d, want the unanswered one", len(due))
				}
				w = due[0]
			}
			if !p.trying(w) {
				t.Fatal("not sent")
			}
			p.ack("ctrl", "n1")
			if p.sent(w, tc.failed, retry) {
				t.Error("given up, but it was answered")
			}
			time.Sleep(4 * retry)
			if due := p.due(time.Now()); len(due) != 0 {
				t.Errorf("answered, and %d due again", len(due))
			}
		})
	}
	// Answered between due and its send: not sent at all.
	p := newPending()
	w := notify("n2")
	p.trying(w)
	p.sent(w, false, retry)
	time.Sleep(2 * retry)
	due := p.due(time.Now())
	p.ack("ctrl", "n2")
	if len(due) != 1 || p.trying(due[0]) {
		t.Errorf("answered before its retry, sent again (%d due)", len(due))
	}
	// Not answered, it stays due.
	w = notify("n3")
	p.trying(w)
	p.sent(w, false, retry)
	time.Sleep(2 * retry)
	if due := p.due(time.Now()); len(due) != 1 {
		t.Errorf("unanswered: %d due", len(due))
	}
}

package migrate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"paradrop/tlscert"
)

// A target the gateway would send a token to in the clear, or to a
// certificate nobody pinned, is refused before anything is sent.
func TestTargetRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Target
		want string
	}{
		{"plain http off loopback", Target{URL: "http://192.0.2.1:8080", Token: "t"}, "plain http only to a loopback"},
		{"plain http to a name", Target{URL: "http://localhost.example:8080", Token: "t"}, "plain http only to a loopback"},
		{"https without a pin", Target{URL: "https://192.0.2.1:8443", Token: "t"}, "needs the target's certificate fingerprint"},
		{"bad pin", Target{URL: "https://192.0.2.1:8443", Token: "t", Fingerprint: "AB:CD"}, "fingerprint"},
		{"no token", Target{URL: "http://127.0.0.1:8080"}, "token"},
		{"a path", Target{URL: "http://127.0.0.1:8080/elsewhere", Token: "t"}, "want https://HOST:PORT"},
		{"credentials", Target{URL: "http://u:p@127.0.0.1:8080", Token: "t"}, "want https://HOST:PORT"},
		{"another scheme", Target{URL: "ftp://127.0.0.1:21", Token: "t"}, "want https://HOST:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.t.Sender()
			if !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrTarget with %q", err, tc.want)
			}
		})
	}
}

// Over https the target's certificate must be the one pinned: another
// gets neither the token nor the stream.
func TestPinnedTarget(t *testing.T) {
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Header.Get("Authorization")+" "+string(body))
		w.WriteHeader(StatusAdmitted)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	pin := tlscert.Of(srv.Certificate().Raw).String()
	other := tlscert.Of([]byte("another certificate")).String()

	send, err := Target{URL: srv.URL, Token: "secret", Fingerprint: other}.Sender()
	if err != nil {
		t.Fatal(err)
	}
	if err := send(context.Background(), strings.NewReader("stream"), func() {}); err == nil || !strings.Contains(err.Error(), "not the one pinned") {
		t.Errorf("to an unpinned certificate: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("the unpinned target got %q", got)
	}
	send, err = Target{URL: srv.URL, Token: "secret", Fingerprint: pin}.Sender()
	if err != nil {
		t.Fatal(err)
	}
	admitted := false
	if err := send(context.Background(), strings.NewReader("stream"), func() { admitted = true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "Bearer secret stream" || !admitted {
		t.Errorf("the pinned target got %q, admitted %v", got, admitted)
	}
}

// A target's refusal is the error, in its own words.
func TestTargetRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":"install: quota: memory"}`)
	}))
	defer srv.Close()
	send, err := Target{URL: srv.URL, Token: "t"}.Sender()
	if err != nil {
		t.Fatal(err)
	}
	if err := send(context.Background(), strings.NewReader("x"), func() { t.Error("admitted") }); err == nil || !strings.Contains(err.Error(), "refused: install: quota: memory") {
		t.Errorf("got %v", err)
	}
}

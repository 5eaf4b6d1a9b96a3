package migrate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"paradrop/chute"
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
			_, err := tc.t.Destination()
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

	to, err := Target{URL: srv.URL, Token: "secret", Fingerprint: other}.Destination()
	if err != nil {
		t.Fatal(err)
	}
	if err := to.Send(context.Background(), strings.NewReader("stream"), chute.Exchange{Admitted: func() {}}); err == nil || !strings.Contains(err.Error(), "not the one pinned") {
		t.Errorf("to an unpinned certificate: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("the unpinned target got %q", got)
	}
	to, err = Target{URL: srv.URL, Token: "secret", Fingerprint: pin}.Destination()
	if err != nil {
		t.Fatal(err)
	}
	admitted := false
	if err := to.Send(context.Background(), strings.NewReader("stream"), chute.Exchange{Admitted: func() { admitted = true }}); err != nil {
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
	to, err := Target{URL: srv.URL, Token: "t"}.Destination()
	if err != nil {
		t.Fatal(err)
	}
	if err := to.Send(context.Background(), strings.NewReader("x"), chute.Exchange{Admitted: func() { t.Error("admitted") }}); !errors.Is(err, chute.ErrRefused) || !strings.Contains(err.Error(), "refused: install: quota: memory") {
		t.Errorf("got %v", err)
	}
}

// Asked whether a chute landed, the target's answer is read as yes only
// for a confirmed chute of that migration; an unconfirmed one, or a
// target that does not answer, is not yet known; not there, or another
// migration's chute, is no. Reopen finds the same target from what was
// saved.
func TestLanded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/v1/chutes/kept":
			io.WriteString(w, `{"name":"kept","state":"running","migration":"m1"}`)
		case "/api/v1/chutes/undecided":
			io.WriteString(w, `{"name":"undecided","state":"running","migration":"m1","unconfirmed":true}`)
		case "/api/v1/chutes/other":
			io.WriteString(w, `{"name":"other","state":"running","migration":"m0"}`)
		case "/api/v1/chutes/broken":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such chute"}`)
		}
	}))
	defer srv.Close()
	d, err := Target{URL: srv.URL, Token: "t"}.Destination()
	if err != nil {
		t.Fatal(err)
	}
	d, err = Reopen(d.Saved)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		landed  bool
		unknown bool
	}{
		{"kept", true, false}, {"undecided", false, true}, {"other", false, false},
		{"gone", false, false}, {"broken", false, true},
	} {
		landed, err := d.Landed(context.Background(), tc.name, "m1")
		if landed != tc.landed || (err != nil) != tc.unknown {
			t.Errorf("%s: landed %v, %v; want %v, unknown %v", tc.name, landed, err, tc.landed, tc.unknown)
		}
	}
	bad, _ := Target{URL: srv.URL, Token: "wrong"}.Destination()
	if _, err := bad.Landed(context.Background(), "kept", "m1"); err == nil {
		t.Error("a refused token reads as an answer")
	}
}

// heldAtRead records whether Held had been called when the stream was
// first read.
type heldAtRead struct {
	held, first *bool
	r           io.Reader
}

func (h heldAtRead) Read(p []byte) (int, error) {
	if *h.first {
		*h.first = false
		if !*h.held {
			return 0, errors.New("read before the target said it holds the package")
		}
	}
	return h.r.Read(p)
}

// A target that holds the package says so before it reads the stream:
// the source knows it before it writes the stream's first part.
func TestTargetHoldsPackage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(PackageHeader) == "ab" {
			w.Header().Set(PackageHeader, "held")
			w.WriteHeader(StatusHeld)
			w.Header().Del(PackageHeader)
		}
		io.ReadAll(r.Body)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	to, err := Target{URL: srv.URL, Token: "t"}.Destination()
	if err != nil {
		t.Fatal(err)
	}
	for _, sum := range []string{"ab", "cd"} {
		held, first := false, true
		x := chute.Exchange{Package: sum, Held: func() { held = true }, Admitted: func() {}}
		stream := heldAtRead{held: &held, first: &first, r: strings.NewReader("stream")}
		err := to.Send(context.Background(), stream, x)
		if sum == "ab" && err != nil {
			t.Errorf("held: %v", err)
		}
		if sum == "cd" && (held || err == nil) {
			t.Errorf("a package the target does not hold: held %v, %v", held, err)
		}
	}
}

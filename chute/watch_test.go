package chute

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// OnChangeEnd tells of every change once it ends, well or badly, once.
func TestOnChangeEnd(t *testing.T) {
	g := newGateway(t, t.TempDir())
	defer g.removeAll()
	var mu sync.Mutex
	var ended []Change
	g.m.OnChangeEnd(func(c Change) {
		mu.Lock()
		ended = append(ended, c)
		mu.Unlock()
	})
	in := g.install(pkg(t, counterV1, nil))
	broken := strings.Replace(strings.Replace(counterV1, "1.0.0", "2.0.0", 1), "exec sleep 1000", "exit 3", 1)
	up := g.wait(g.m.Update(context.Background(), "counter", bytes.NewReader(pkg(t, broken, nil)), false, Origin{}))
	rm := g.mustDo(g.m.Remove("counter", false, "operator"))
	eventually(t, 10*time.Second, "three changes told", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ended) >= 3
	})
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	want := []struct {
		id     uint64
		action string
		state  ChangeState
	}{{in.ID, "install", ChangeDone}, {up.ID, "update", ChangeError}, {rm.ID, "remove", ChangeDone}}
	if len(ended) != len(want) {
		t.Fatalf("told %d changes: %+v", len(ended), ended)
	}
	for i, w := range want {
		if c := ended[i]; c.ID != w.id || c.Action != w.action || c.State != w.state || c.Ended == nil {
			t.Errorf("change %d: %+v, want %+v", i, c, w)
		}
	}
}

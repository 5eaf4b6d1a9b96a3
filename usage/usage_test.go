package usage

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"paradrop/store"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *store.DB) int {
	t.Helper()
	n := 0
	db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Usage, func(string, []byte) error { n++; return nil })
	})
	return n
}

// Thirty hours of samples, one every 10 s, leave 24 hours of minutes in
// the store and 15 minutes of samples in memory.
func TestPruneKeepsStoreBounded(t *testing.T) {
	db := openDB(t)
	s := New(Config{DB: db, DataDir: t.TempDir()})
	start := time.Now().Add(-30 * time.Hour).Truncate(time.Minute)
	var end time.Time
	for ts := start; ts.Before(start.Add(30 * time.Hour)); ts = ts.Add(10 * time.Second) {
		if err := s.record(reading{gw: Sample{T: ts.UnixMilli(), CPU: float64(ts.Minute())}}); err != nil {
			t.Fatal(err)
		}
		end = ts
	}
	if n := count(t, db); n < 24*60-1 || n > 24*60+1 {
		t.Errorf("%d minutes stored, want 24 h of them (%d)", n, 24*60)
	}
	if s.ring.len() != cap(s.ring.slots) || cap(s.ring.slots) != int(Recent/Interval) {
		t.Errorf("ring holds %d of %d", s.ring.len(), cap(s.ring.slots))
	}
	// Aggregates are minute averages: every sample of a minute had the
	// same CPU, its minute number.
	var first Sample
	db.View(func(tx *store.Tx) error {
		return tx.ForEach(store.Usage, func(k string, _ []byte) error {
			if first.T == 0 {
				return tx.Get(store.Usage, k, &first)
			}
			return nil
		})
	})
	if want := float64(time.UnixMilli(first.T).Minute()); first.T%60000 != 0 || first.CPU < want-1e-9 || first.CPU > want+1e-9 {
		t.Errorf("oldest aggregate %+v", first)
	}
	// Pruning runs as each minute completes, so one more may linger.
	if first.T < end.Add(-Kept-time.Minute).UnixMilli() {
		t.Errorf("aggregate of %s kept, older than %s", time.UnixMilli(first.T), Kept)
	}
}

func TestSeriesWindows(t *testing.T) {
	db := openDB(t)
	s := New(Config{DB: db, DataDir: t.TempDir()})
	now := time.Now()
	for i := 2000; i > 0; i-- {
		ts := now.Add(-time.Duration(i) * time.Second)
		if err := s.record(reading{gw: Sample{T: ts.UnixMilli()}}); err != nil {
			t.Fatal(err)
		}
	}
	short, err := s.Series(60 * time.Second)
	if err != nil || short.Interval != time.Second {
		t.Fatalf("%+v %v", short.Interval, err)
	}
	if n := len(short.Samples); n < 59 || n > 60 {
		t.Errorf("%d samples in a 60 s window", n)
	}
	for i := 1; i < len(short.Samples); i++ {
		if short.Samples[i].T <= short.Samples[i-1].T {
			t.Fatalf("samples out of order at %d", i)
		}
	}
	all, _ := s.Series(Recent) // the ring's oldest may fall just outside
	if n := len(all.Samples); n < int(Recent/Interval)-1 {
		t.Errorf("%d samples in %s, want the ring's %d", n, Recent, int(Recent/Interval))
	}
	long, err := s.Series(time.Hour)
	if err != nil || long.Interval != time.Minute {
		t.Fatalf("%+v %v", long.Interval, err)
	}
	// 2000 s span 33 or 34 minutes; the current one is not complete.
	if n := len(long.Samples); n < 32 || n > 34 {
		t.Errorf("%d minutes in an hour's window", n)
	}
}

// Real readings of this host: plausible values, rates after two samples.
func TestSampleHost(t *testing.T) {
	s := New(Config{DataDir: t.TempDir()})
	ctx := context.Background()
	if err := s.sample(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Latest(); ok {
		t.Fatal("a sample without a previous reading to rate against")
	}
	busy := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(busy) {
	}
	if err := s.sample(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	smp, ok := s.Latest()
	if !ok {
		t.Fatal("no sample")
	}
	if smp.CPU <= 0 || smp.CPU > 100 || smp.MemUsed == 0 || smp.MemUsed > smp.MemTotal ||
		smp.DiskTotal == 0 || smp.DiskUsed > smp.DiskTotal {
		t.Errorf("implausible sample %+v", smp)
	}
	if _, ok := smp.Ifaces["lo"]; !ok {
		t.Errorf("no lo among %v", smp.Ifaces)
	}
}

// The gateway's OOM-kill counter only grows: a chute not sampled keeps its
// reading, and a count that went back is a new cgroup counted from 0.
func TestOOMKillsCounted(t *testing.T) {
	s := New(Config{})
	for i, step := range []struct {
		chutes map[string]chuteCount
		want   uint64
	}{
		{map[string]chuteCount{"a": {oomKills: 0}, "b": {oomKills: 1}}, 1},
		{map[string]chuteCount{"a": {oomKills: 2}, "b": {oomKills: 1}}, 3},
		{map[string]chuteCount{"b": {oomKills: 1}}, 3}, // a stopped
		{map[string]chuteCount{"a": {oomKills: 3}}, 4}, // a back in its cgroup
		{map[string]chuteCount{"a": {oomKills: 1}}, 5}, // a in a new cgroup
	} {
		s.mu.Lock()
		s.countOOMKills(step.chutes)
		s.mu.Unlock()
		if got := s.OOMKills(); got != step.want {
			t.Fatalf("step %d: %d OOM kills, want %d", i, got, step.want)
		}
	}
}

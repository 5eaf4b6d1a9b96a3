package chute

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// keeper appends to its own file in /data: "denied" if the file it wrote
// before is no longer its own.
const keeperChute = `
name: keeper
version: 1.0.0
command: ["/bin/sh", "-c", "rm -f /data/result; if [ -f /data/mine ]; then (echo again >> /data/mine) 2>/dev/null && echo ok > /data/result || echo denied > /data/result; else echo first > /data/mine && echo first > /data/result; fi; exec sleep 1000"]
`

// After remove --keep-data, the uid slot that owns the kept files stays
// reserved, across a daemon restart: another chute installed meanwhile
// gets another slot, and the reinstalled chute gets its files back as its
// own.
func TestKeptDataStaysTheChutes(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, dir)
	g.install(pkg(t, keeperChute, nil))
	eventually(t, 10*time.Second, "first run", func() bool { return readData(g, "keeper", "result") == "first" })
	g.install(pkg(t, diskChute("other", "8Mi"), nil))
	slot := g.m.chutes["keeper"].rec.Slot
	g.mustDo(g.m.Remove("keeper", true, ""))
	g.shutdown()

	g = newGateway(t, dir)
	defer g.removeAll()
	g.install(pkg(t, diskChute("third", "8Mi"), nil))
	if s := g.m.chutes["third"].rec.Slot; s == slot {
		t.Errorf("a new chute got slot %d, the kept data's", s)
	}
	g.install(pkg(t, keeperChute, nil))
	// The kept volume holds the first run's result until the chute
	// replaces it.
	eventually(t, 10*time.Second, "second run", func() bool {
		r := readData(g, "keeper", "result")
		return r == "ok" || r == "denied"
	})
	if got := readData(g, "keeper", "result"); got != "ok" {
		t.Errorf("reinstalled chute writing its kept file: %q, want ok", got)
	}
	eventually(t, 2*time.Second, "the kept file appended to", func() bool { return readData(g, "keeper", "mine") == "first\nagain" })
	fi, err := os.Stat(filepath.Join(g.m.paths.data("keeper"), "mine"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != hostID(slot) {
		t.Errorf("kept file owned by host uid %d, want the chute's %d", uid, hostID(slot))
	}
	if ents, _ := os.ReadDir(g.m.paths.kept()); len(ents) != 0 {
		t.Errorf("kept directory not empty after reuse: %v", ents)
	}
}

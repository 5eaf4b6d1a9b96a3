package chute

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"paradrop/chute/manifest"
	"paradrop/chute/volume"
)

const mi = 1 << 20

func TestFit(t *testing.T) {
	r := room{diskFree: 100 * mi, diskSize: 200 * mi, diskHeadroom: 10 * mi, memory: 1024 * mi, memTotal: 1024 * mi, overcommit: 1}
	hs := map[string]holding{
		// 64Mi quota of which 24Mi written: 40Mi promised.
		"a": {disk: 64 * mi, diskAlloc: 24 * mi, memory: 512 * mi},
		// Kept volume, fully written: nothing more promised.
		"kept": {disk: 16 * mi, diskAlloc: 16 * mi},
	}
	cases := []struct {
		name string
		c    claim
		want string // "" fits; else a part of the error
	}{
		{"new chute in the free space", claim{name: "b", disk: 60 * mi, memory: 512 * mi}, ""},
		{"new chute over the free space", claim{name: "b", disk: 61 * mi}, `disk: "b" asks 61Mi for /data, at most 60Mi fits`},
		{"terabyte disk", claim{name: "b", disk: 1 << 40}, "asks 1Ti for /data"},
		{"terabyte memory", claim{name: "b", disk: 1 * mi, memory: 1 << 40}, `memory: "b" asks 1Ti (the larger of memory and tmp), at most 512Mi fits`},
		{"both named", claim{name: "b", disk: 1 << 40, memory: 1 << 40}, "; memory:"},
		// a's own written part is its own: it may grow to 24+100 = 124Mi.
		{"growing chute within", claim{name: "a", disk: 124 * mi}, ""},
		{"growing chute beyond", claim{name: "a", disk: 125 * mi}, `"a" asks 125Mi for /data, at most 124Mi fits`},
		{"same quota again", claim{name: "a", disk: 64 * mi, memory: 512 * mi}, ""},
		{"kept volume reinstalled at its size", claim{name: "kept", disk: 16 * mi}, ""},
		{"memory raise within", claim{name: "a", memory: 1024 * mi}, ""},
		{"memory raise beyond", claim{name: "a", memory: 1025 * mi}, "at most 1Gi fits"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := fit(r, hs, c.c)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (!errors.Is(err, ErrNoRoom) || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("err = %v, want ErrNoRoom with %q", err, c.want)
			}
		})
	}
	// Overcommitted already (chutes installed before admission existed):
	// what does not add to the promises is still admitted.
	over := map[string]holding{"a": {disk: 500 * mi, memory: 4096 * mi}}
	if err := fit(r, over, claim{name: "a", disk: 400 * mi, memory: 64 * mi}); err != nil {
		t.Errorf("no raise on an overcommitted gateway: %v", err)
	}
	if err := fit(r, over, claim{name: "b", disk: 1 * mi}); !errors.Is(err, ErrNoRoom) {
		t.Errorf("new chute on an overcommitted gateway: %v", err)
	}
}

// smallDataDir returns a data directory on a fresh ext4 filesystem of size
// bytes, mounted for the test.
func smallDataDir(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (loop mounts)")
	}
	tmp := t.TempDir()
	// t.TempDir's parent is 0700: chute ids must be able to reach their rootfs.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	mnt := filepath.Join(tmp, "fs")
	if err := volume.Ensure(context.Background(), filepath.Join(tmp, "fs.img"), mnt, size, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The chutes' monitor, which keeps its files in the data
		// directory, exits once the gateway let go of it: a moment after.
		err := volume.Remove(filepath.Join(tmp, "fs.img"), mnt)
		for deadline := time.Now().Add(5 * time.Second); errors.Is(err, syscall.EBUSY) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			err = volume.Remove(filepath.Join(tmp, "fs.img"), mnt)
		}
		if err != nil {
			t.Error(err)
		}
	})
	// Under a parent of mode 0700, as newGatewayWith wants.
	dir := filepath.Join(mnt, "private", "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func diskChute(name, disk string) string {
	return fmt.Sprintf("name: %s\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\nresources: {disk: %s}\n", name, disk)
}

// A data filesystem of 68 MiB holds what its free space allows and no more:
// a /data quota beyond it is refused at once, two installs racing for the
// last space cannot both have it, and a removal gives its space back.
// (68, not 64: each installed chute keeps its package, 1 MiB here, for a
// migration to send.)
func TestDiskAdmissionOnSmallFilesystem(t *testing.T) {
	g := newGatewayWith(t, smallDataDir(t, 68*mi), func(c *Config) { c.Memory = 1 << 30 })
	defer g.removeAll()

	_, err := g.m.Install(context.Background(), bytes.NewReader(pkg(t, diskChute("huge", "1Gi"), nil)), Origin{})
	if !errors.Is(err, ErrNoRoom) || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `disk: "huge" asks 1Gi for /data, at most `) {
		t.Fatalf("1Gi on a 64Mi filesystem: %v, want ErrNoRoom naming disk", err)
	}
	t.Logf("refused: %v", err)
	if _, err := g.m.Get("huge"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused chute is known: %v", err)
	}
	g.install(pkg(t, diskChute("first", "24Mi"), nil))

	// What is left (about 20Mi) can go to one of two racing installs.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	chs := make([]Change, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chs[i], errs[i] = g.m.Install(context.Background(), bytes.NewReader(pkg(t, diskChute(fmt.Sprintf("racer%d", i), "16Mi"), nil)), Origin{})
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if won >= 0 {
				t.Fatalf("both racers admitted for 16Mi each")
			}
			won = i
		case !errors.Is(err, ErrNoRoom):
			t.Fatalf("racer%d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatalf("neither racer admitted: %v", errs)
	}
	g.mustDo(chs[won], nil)
	// The installed chutes can fill their /data to the quota and the
	// filesystem still has room.
	for _, name := range []string{"first", fmt.Sprintf("racer%d", won)} {
		f, err := os.Create(filepath.Join(g.m.paths.data(name), "fill"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(make([]byte, 32*mi))
		f.Close()
		if err == nil || !strings.Contains(err.Error(), "no space") {
			t.Errorf("%s wrote 32Mi into a 16..24Mi volume: %v", name, err)
		}
	}
	// The host filesystem kept its headroom free.
	var free int64
	if r, err := g.m.room(); err != nil {
		t.Fatal(err)
	} else if free = r.diskFree + r.diskHeadroom; free < 4*mi {
		t.Errorf("data filesystem down to %d bytes free with every volume full", free)
	} else {
		t.Logf("every volume full: %s free of the %s data filesystem", mib(free), mib(r.diskSize))
	}
	// Nor can an update grow a quota past it.
	up := strings.Replace(diskChute("first", "1Gi"), "1.0.0", "1.1.0", 1)
	_, err = g.m.Update(context.Background(), "first", bytes.NewReader(pkg(t, up, nil)), false, Origin{})
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), `disk: "first" asks 1Gi for /data`) {
		t.Errorf("update to 1Gi: %v", err)
	}

	// Removing the first chute gives its space back to the loser.
	loser := fmt.Sprintf("racer%d", 1-won)
	g.mustDo(g.m.Remove("first", false, ""))
	g.install(pkg(t, diskChute(loser, "16Mi"), nil))
}

// Memory and tmp are promised against the gateway's memory times the
// overcommit ratio, at install, update and policy change alike.
func TestMemoryAdmission(t *testing.T) {
	g := newGatewayWith(t, t.TempDir(), func(c *Config) { c.Memory = 256 * mi; c.MemoryOvercommit = 1.5 })
	defer g.removeAll()
	man := func(name, version, res string) []byte {
		return pkg(t, fmt.Sprintf("name: %s\nversion: %s\ncommand: [/bin/sleep, \"1000\"]\nresources: {%s}\n", name, version, res), nil)
	}
	for _, c := range []struct{ res, want string }{
		{"memory: 1Ti", `memory: "big" asks 1Ti (the larger of memory and tmp), at most 384Mi fits (gateway memory 256Mi × overcommit 1.5`},
		{"tmp: 1Ti", `memory: "big" asks 1Ti`},
	} {
		_, err := g.m.Install(context.Background(), bytes.NewReader(man("big", "1.0.0", c.res)), Origin{})
		if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.res, err, c.want)
		}
	}
	g.install(man("a", "1.0.0", "memory: 256Mi"))
	if _, err := g.m.Install(context.Background(), bytes.NewReader(man("b", "1.0.0", "memory: 129Mi")), Origin{}); !errors.Is(err, ErrNoRoom) {
		t.Errorf("129Mi with 128Mi left: %v", err)
	}
	g.install(man("b", "1.0.0", "memory: 64Mi"))
	_, err := g.m.Update(context.Background(), "b", bytes.NewReader(man("b", "1.1.0", "memory: 200Mi")), false, Origin{})
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "at most 128Mi fits") {
		t.Errorf("update to 200Mi with 128Mi for it: %v", err)
	}
	_, err = g.m.SetResources("a", ResourceRequest{Policy: Policy{Memory: ptr(manifest.Bytes(400 * mi))}}, "")
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "at most 320Mi fits") {
		t.Errorf("policy raise to 400Mi with 320Mi for it: %v", err)
	}
	g.mustDo(g.m.SetResources("a", ResourceRequest{Policy: Policy{Memory: ptr(manifest.Bytes(128 * mi))}}, ""))
	g.mustDo(g.m.Update(context.Background(), "b", bytes.NewReader(man("b", "1.1.0", "memory: 200Mi")), false, Origin{}))
}

// A quota the manifest accepts is one a volume can be made of: else the
// install would pass validation and fail at start.
func TestManifestDiskFloorIsAVolume(t *testing.T) {
	if manifest.MinDisk != volume.MinSize {
		t.Errorf("manifest.MinDisk %d, volume.MinSize %d", manifest.MinDisk, volume.MinSize)
	}
}

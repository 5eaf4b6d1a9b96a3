package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// When the daemon hands back the pages of its binary it alone maps.
const (
	trimFirst = time.Minute // start-up and the recovery of the chutes done
	trimEvery = 10 * time.Minute
)

// trimOwnPages releases the daemon's own pages of its binary once its
// start-up is over, then every trimEvery, until ctx ends. Start-up (the
// initialisation of some 180 packages, flags, store, recovery) and every
// install touch code and tables that the idle daemon never runs again;
// those pages stayed mapped, 5 MiB of its VmRSS, and held in memory as
// page cache until the kernel ran short. What it runs again faults back
// in from the page cache, or the binary.
func trimOwnPages(ctx context.Context, logf func(format string, args ...any)) {
	t := time.NewTimer(trimFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := releaseOwnText(); err != nil {
			logf("keeping the binary's pages mapped: %v", err)
			return
		}
		t.Reset(trimEvery)
	}
}

// releaseOwnText asks the kernel to reclaim the pages of this process's
// binary mapped read-only (code, read-only data) that no other process
// maps: MADV_PAGEOUT leaves those the shims (the same binary) map too,
// and the clean pages it takes need no writing back.
func releaseOwnText() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(maps), "\n") {
		// ADDR PERMS OFFSET DEV INODE PATH
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != exe || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return fmt.Errorf("/proc/self/maps: bad range %q", f[0])
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return fmt.Errorf("madvise %s of %s: %w", f[0], exe, errno)
		}
	}
	return nil
}

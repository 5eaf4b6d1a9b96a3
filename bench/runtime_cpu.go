package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"paradrop/chute/sandbox"
)

// cpuMark is where a start's CPU time is counted from: what this process
// and its reaped children (shims, and through them the chutes' inits and
// commands) had used, and what each idle spare shim had used booting.
type cpuMark struct {
	tree   time.Duration
	spares map[int]time.Duration
}

func markCPU() (cpuMark, error) {
	spares, _, err := shimChildren()
	return cpuMark{tree: treeCPU(), spares: spares}, err
}

// since waits until every shim that took a chute since the mark has exited
// and been reaped, and returns the CPU time used since the mark, less the
// boot of the spares that served: the CPU a start costs on its way, which
// starts at once share.
func (m cpuMark) since(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		idle, busy, err := shimChildren()
		if err != nil {
			return 0, err
		}
		if busy == 0 {
			d := treeCPU() - m.tree
			for pid, boot := range m.spares {
				if _, still := idle[pid]; !still {
					d -= boot
				}
			}
			return d, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("shims still running after the chutes exited: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// treeCPU is the user and system time of this process and its reaped
// children.
func treeCPU() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration {
		return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
	}
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// shimChildren finds this process's shims: the idle spares (output still
// on /dev/null) with the CPU time each has used, and how many others
// (given a chute, or exec'ed for one) are alive and not yet reaped.
func shimChildren() (idle map[int]time.Duration, busy int, err error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, 0, err
	}
	idle = map[int]time.Duration{}
	me := strconv.Itoa(os.Getpid())
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != me {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmd, []byte("\x00"+sandbox.ShimCommand+"\x00")) {
			continue
		}
		if out, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid)); out == os.DevNull {
			idle[pid] = spareCPU(pid)
		} else {
			busy++
		}
	}
	return idle, busy, nil
}

// spareCPU is the time on CPU of every thread of process pid, from
// schedstat.
func spareCPU(pid int) time.Duration {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var d time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			d += time.Duration(ns)
		}
	}
	return d
}

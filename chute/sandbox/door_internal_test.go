package sandbox

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"paradrop/chute/sandbox/pid1"
)

// fakeDoor is the chute's end of a door socket, played by the test as a
// hostile chute would.
func fakeDoor(t *testing.T, timeout time.Duration) (*door, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "door")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return &door{conn: conn(fds[0]), timeout: timeout, buf: make([]byte, pid1.CheckReportMax+1)}, conn(fds[1])
}

// answer reads one request on the chute's end and sends what reply makes
// of its sequence number.
func answer(t *testing.T, c *net.UnixConn, reply func(seq uint64) [][]byte) {
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		var seq uint64
		for i := range 8 {
			seq |= uint64(buf[i]) << (8 * i)
		}
		if n != 8 {
			t.Errorf("request of %d bytes", n)
		}
		for _, msg := range reply(seq) {
			c.Write(msg)
		}
	}()
}

func report(r pid1.CheckReport) []byte { return r.Encode() }

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestDoorCheckHostile(t *testing.T) {
	tests := []struct {
		name  string
		reply func(seq uint64) [][]byte
		want  CheckResult
		err   string
	}{
		{name: "pass", reply: func(seq uint64) [][]byte {
			return [][]byte{report(pid1.CheckReport{Seq: seq, Exited: true, Output: "ok"})}
		}, want: CheckResult{Output: "ok"}},
		{name: "signal", reply: func(seq uint64) [][]byte {
			return [][]byte{report(pid1.CheckReport{Seq: seq, Signal: 9, TimedOut: true})}
		}, want: CheckResult{Code: 137, Signal: "killed", TimedOut: true}},
		{name: "stale reports skipped", reply: func(seq uint64) [][]byte {
			return [][]byte{
				report(pid1.CheckReport{Seq: seq - 1, Exited: true, Output: "old"}),
				report(pid1.CheckReport{Seq: seq + 5, Exited: true, Output: "forged"}),
				report(pid1.CheckReport{Seq: seq, Exited: true, Code: 1, Output: "now"}),
			}
		}, want: CheckResult{Code: 1, Output: "now"}},
		{name: "oversized", reply: func(seq uint64) [][]byte {
			return [][]byte{make([]byte, 64<<10)}
		}, err: "health door sent an oversized report"},
		{name: "malformed", reply: func(seq uint64) [][]byte {
			return [][]byte{[]byte("HTTP/1.1 200 OK\r\n")}
		}, err: "health door: malformed door message"},
		{name: "silent", reply: func(seq uint64) [][]byte { return nil },
			err: "health door did not report within 2.05s"},
		{name: "flood of stale reports", reply: func(seq uint64) [][]byte {
			var msgs [][]byte
			for i := range 1000 {
				msgs = append(msgs, report(pid1.CheckReport{Seq: seq + 1 + uint64(i), Exited: true}))
			}
			return msgs
		}, err: "health door did not report within 2.05s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, chute := fakeDoor(t, 50*time.Millisecond)
			d.seq = 41
			answer(t, chute, tt.reply)
			t0 := time.Now()
			res, err := d.check()
			if d := time.Since(t0); d > 3*time.Second {
				t.Errorf("check took %s", d)
			}
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Errorf("check: %+v, %v; want error %q", res, err, tt.err)
				}
				return
			}
			if err != nil || res != tt.want {
				t.Errorf("check: %+v, %v; want %+v", res, err, tt.want)
			}
		})
	}

	t.Run("descriptors sent along are dropped", func(t *testing.T) {
		d, chute := fakeDoor(t, 50*time.Millisecond)
		before := openFDs(t)
		answered := make(chan struct{}) // closed once the fake door closed its own file
		answer(t, chute, func(seq uint64) [][]byte {
			defer close(answered)
			f, err := os.Open("/dev/null")
			if err != nil {
				t.Error(err)
				return nil
			}
			defer f.Close()
			rights := unix.UnixRights(int(f.Fd()), int(f.Fd()), int(f.Fd()))
			chute.WriteMsgUnix(report(pid1.CheckReport{Seq: seq, Exited: true}), rights, nil)
			return nil
		})
		if res, err := d.check(); err != nil || res.Err() != nil {
			t.Errorf("check: %+v, %v", res, err)
		}
		<-answered
		if after := openFDs(t); after > before {
			t.Errorf("%d descriptors open after the check, %d before", after, before)
		}
	})

	t.Run("door gone", func(t *testing.T) {
		d, chute := fakeDoor(t, time.Minute)
		chute.Close()
		if _, err := d.check(); err == nil || !strings.Contains(err.Error(), "health door gone") {
			t.Errorf("check: %v, want the door gone", err)
		}
	})
}

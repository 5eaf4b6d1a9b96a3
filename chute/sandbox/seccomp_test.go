package sandbox

import (
	"encoding/binary"
	"runtime"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// runFilter evaluates the chute's filter on one syscall with x/net/bpf's
// VM. The VM loads words big-endian where the kernel loads them in native
// order, so each 32-bit word of seccomp_data is laid out big-endian at the
// offset the kernel reads it from: a 64-bit argument's low word first on a
// little-endian machine, its high word first on a big-endian one. (The
// filter's argument checks are assembled for the machine that runs them.)
func runFilter(t *testing.T, vm *bpf.VM, auditArch uint32, nr int, args ...uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], uint32(nr))
	binary.BigEndian.PutUint32(data[4:], auditArch)
	for i, a := range args {
		lo, hi := 16+8*i, 20+8*i
		if !isLittleEndian() {
			lo, hi = hi, lo
		}
		binary.BigEndian.PutUint32(data[lo:], uint32(a))
		binary.BigEndian.PutUint32(data[hi:], uint32(a>>32))
	}
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(ret)
}

// filterVM loads a filter into x/net/bpf's VM.
func filterVM(t *testing.T, raw []bpf.RawInstruction) *bpf.VM {
	t.Helper()
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func isLittleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

// filterArches are those `make cross` ships and amd64, each with its
// audit arch (linux/audit.h) and the numbers x/sys/unix gives mount and
// clone3 there, as a check of the table the filter is built from.
var filterArches = []struct {
	goarch        string
	audit         uint32
	mount, clone3 int
}{
	{"386", 0x40000003, 21, 435},
	{"amd64", 0xc000003e, 165, 435},
	{"arm", 0x40000028, 21, 435},
	{"arm64", 0xc00000b7, 40, 435},
	{"mips", 0x00000008, 4021, 4435},
	{"mipsle", 0x40000008, 4021, 4435},
}

func TestSeccompFilter(t *testing.T) {
	const (
		allow  = uint32(seccomp.ActionAllow)
		eperm  = uint32(seccomp.ActionErrno) | uint32(unix.EPERM)
		enosys = uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)
	)
	forkFlags := uint64(unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | uint64(unix.SIGCHLD))
	threadFlags := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM)
	tests := []struct {
		name    string
		syscall string
		args    []uint64
		want    uint32
	}{
		{"read", "read", nil, allow},
		{"execve", "execve", nil, allow},
		{"ptrace", "ptrace", nil, allow},
		{"mount", "mount", nil, eperm},
		{"umount2", "umount2", nil, eperm},
		{"pivot_root", "pivot_root", nil, eperm},
		{"keyctl", "keyctl", nil, eperm},
		{"bpf", "bpf", nil, eperm},
		{"kexec_load", "kexec_load", nil, eperm},
		{"init_module", "init_module", nil, eperm},
		{"open_by_handle_at", "open_by_handle_at", nil, eperm},
		{"setns", "setns", nil, eperm},
		{"unshare user", "unshare", []uint64{unix.CLONE_NEWUSER}, eperm},
		{"unshare time", "unshare", []uint64{unix.CLONE_NEWTIME}, eperm},
		{"unshare files", "unshare", []uint64{unix.CLONE_FILES}, allow},
		{"clone fork", "clone", []uint64{forkFlags}, allow},
		{"clone thread", "clone", []uint64{threadFlags}, allow},
		{"clone new user ns", "clone", []uint64{forkFlags | unix.CLONE_NEWUSER}, eperm},
		{"clone new net ns", "clone", []uint64{unix.CLONE_NEWNET}, eperm},
		{"clone3", "clone3", nil, enosys},
		{"personality default", "personality", []uint64{0}, allow},
		{"personality query", "personality", []uint64{0xffffffff}, allow},
		{"personality read-implies-exec", "personality", []uint64{0x0400000}, eperm},
	}
	for _, a := range filterArches {
		t.Run(a.goarch, func(t *testing.T) {
			raw, err := seccompProgramFor(a.goarch)
			if err != nil {
				t.Fatal(err)
			}
			vm := filterVM(t, raw)
			nrs := sysnums(a.goarch)
			if nrs["mount"] != uint32(a.mount) || nrs["clone3"] != uint32(a.clone3) {
				t.Fatalf("table has mount %d, clone3 %d; x/sys/unix has %d, %d",
					nrs["mount"], nrs["clone3"], a.mount, a.clone3)
			}
			for _, tt := range tests {
				nr, ok := nrs[tt.syscall]
				if !ok {
					t.Fatalf("no %s in the table", tt.syscall)
				}
				if got := runFilter(t, vm, a.audit, int(nr), tt.args...); got != tt.want {
					t.Errorf("%s: filter returned %#x, want %#x", tt.name, got, tt.want)
				}
			}
			if got := runFilter(t, vm, a.audit^0x1, int(nrs["read"])); got != enosys {
				t.Errorf("foreign arch: filter returned %#x, want %#x", got, enosys)
			}
			if a.goarch == "amd64" {
				if got := runFilter(t, vm, a.audit, int(nrs["read"])|0x40000000); got != enosys {
					t.Errorf("x32 read: filter returned %#x, want %#x", got, enosys)
				}
			}
		})
	}
}

// TestSyscallTables checks the tables generated from x/sys/unix against
// the numbers this build of x/sys/unix has, and against the seccomp
// library's own tables where it has them, for every syscall the filter
// names.
func TestSyscallTables(t *testing.T) {
	native := sysnums(runtime.GOARCH)
	for name, nr := range map[string]int{
		"read": unix.SYS_READ, "mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2,
		"unshare": unix.SYS_UNSHARE, "clone": unix.SYS_CLONE, "clone3": unix.SYS_CLONE3,
		"personality": unix.SYS_PERSONALITY, "setns": unix.SYS_SETNS, "bpf": unix.SYS_BPF,
	} {
		if got, ok := native[name]; !ok || got != uint32(nr) {
			t.Errorf("%s/%s: table has %d (%v), x/sys/unix %d", runtime.GOARCH, name, got, ok, nr)
		}
	}
	names := append([]string{"unshare", "clone", "clone3", "personality"}, deniedSyscalls...)
	for _, a := range filterArches {
		info, err := arch.GetInfo(a.goarch)
		if err != nil {
			continue // the library has no table for it (MIPS)
		}
		if uint32(info.ID) != a.audit {
			t.Errorf("%s: audit arch %#x, library has %#x", a.goarch, a.audit, uint32(info.ID))
		}
		nrs := sysnums(a.goarch)
		for _, name := range names {
			want, inLib := info.SyscallNames[name]
			got, inTable := nrs[name]
			if inLib != inTable || uint32(want) != got {
				t.Errorf("%s/%s: table has %d (%v), library %d (%v)", a.goarch, name, got, inTable, want, inLib)
			}
		}
	}
	if _, err := seccompProgramFor("riscv64"); err == nil {
		t.Error("a filter was built for an architecture without a table")
	}
}

// TestSeccompFilterBytes reads the filter the init plan carries as the
// kernel reads an array of struct sock_filter, in the running machine's
// byte order, and runs it: under qemu for mips (big endian) or a 32-bit
// arch, an encoding that is right only on x86-64 fails here.
func TestSeccompFilterBytes(t *testing.T) {
	b, err := seccompFilter()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || len(b)%8 != 0 {
		t.Fatalf("filter is %d bytes, not an array of 8-byte struct sock_filter", len(b))
	}
	raw := make([]bpf.RawInstruction, len(b)/8)
	for i := range raw {
		r := b[8*i:]
		raw[i] = bpf.RawInstruction{Op: binary.NativeEndian.Uint16(r), Jt: r[2], Jf: r[3], K: binary.NativeEndian.Uint32(r[4:])}
	}
	vm := filterVM(t, raw)
	audit := uint32(auditArches[runtime.GOARCH])
	nrs := sysnums(runtime.GOARCH)
	eperm := uint32(seccomp.ActionErrno) | uint32(unix.EPERM)
	if got := runFilter(t, vm, audit, int(nrs["read"])); got != uint32(seccomp.ActionAllow) {
		t.Errorf("read: filter returned %#x, want allow", got)
	}
	if got := runFilter(t, vm, audit, int(nrs["mount"])); got != eperm {
		t.Errorf("mount: filter returned %#x, want EPERM", got)
	}
	if got := runFilter(t, vm, audit, int(nrs["unshare"]), unix.CLONE_NEWUSER); got != eperm {
		t.Errorf("unshare(CLONE_NEWUSER): filter returned %#x, want EPERM", got)
	}
}

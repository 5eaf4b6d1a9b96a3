package sandbox

import (
	"encoding/binary"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// runFilter evaluates the chute's filter on one syscall with x/net/bpf's
// VM. The VM loads words big-endian where the kernel loads them in native
// order, so each 32-bit word of seccomp_data is laid out big-endian at the
// offset the (little-endian) kernel reads it from.
func runFilter(t *testing.T, vm *bpf.VM, auditArch uint32, nr int, args ...uint64) uint32 {
	t.Helper()
	if !isLittleEndian() {
		t.Fatal("this simulation lays out seccomp_data for little-endian hosts")
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], uint32(nr))
	binary.BigEndian.PutUint32(data[4:], auditArch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(ret)
}

func isLittleEndian() bool {
	return binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

func TestSeccompFilter(t *testing.T) {
	raw, err := seccompProgram()
	if err != nil {
		t.Fatal(err)
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	native := uint32(info.ID)
	const (
		allow  = uint32(seccomp.ActionAllow)
		eperm  = uint32(seccomp.ActionErrno) | uint32(unix.EPERM)
		enosys = uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)
	)
	forkFlags := uint64(unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | uint64(unix.SIGCHLD))
	threadFlags := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM)
	tests := []struct {
		name string
		arch uint32
		nr   int
		args []uint64
		want uint32
	}{
		{"read", native, unix.SYS_READ, nil, allow},
		{"execve", native, unix.SYS_EXECVE, nil, allow},
		{"ptrace", native, unix.SYS_PTRACE, nil, allow},
		{"mount", native, unix.SYS_MOUNT, nil, eperm},
		{"umount2", native, unix.SYS_UMOUNT2, nil, eperm},
		{"pivot_root", native, unix.SYS_PIVOT_ROOT, nil, eperm},
		{"keyctl", native, unix.SYS_KEYCTL, nil, eperm},
		{"bpf", native, unix.SYS_BPF, nil, eperm},
		{"kexec_load", native, unix.SYS_KEXEC_LOAD, nil, eperm},
		{"init_module", native, unix.SYS_INIT_MODULE, nil, eperm},
		{"open_by_handle_at", native, unix.SYS_OPEN_BY_HANDLE_AT, nil, eperm},
		{"setns", native, unix.SYS_SETNS, nil, eperm},
		{"unshare user", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"unshare time", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWTIME}, eperm},
		{"unshare files", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_FILES}, allow},
		{"clone fork", native, unix.SYS_CLONE, []uint64{forkFlags}, allow},
		{"clone thread", native, unix.SYS_CLONE, []uint64{threadFlags}, allow},
		{"clone new user ns", native, unix.SYS_CLONE, []uint64{forkFlags | unix.CLONE_NEWUSER}, eperm},
		{"clone new net ns", native, unix.SYS_CLONE, []uint64{unix.CLONE_NEWNET}, eperm},
		{"clone3", native, unix.SYS_CLONE3, nil, enosys},
		{"personality default", native, unix.SYS_PERSONALITY, []uint64{0}, allow},
		{"personality query", native, unix.SYS_PERSONALITY, []uint64{0xffffffff}, allow},
		{"personality read-implies-exec", native, unix.SYS_PERSONALITY, []uint64{0x0400000}, eperm},
		{"foreign arch", native ^ 0x1, unix.SYS_READ, nil, enosys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, vm, tt.arch, tt.nr, tt.args...); got != tt.want {
				t.Errorf("filter returned %#x, want %#x", got, tt.want)
			}
		})
	}
}

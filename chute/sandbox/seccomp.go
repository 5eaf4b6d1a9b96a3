package sandbox

import (
	"fmt"
	"runtime"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM in a chute. It follows Docker's default
// profile for a process without CAP_SYS_ADMIN: kernel keyring, module and
// kexec loading, BPF and perf, clock and swap administration, mounting and
// namespace switching, and syscalls that only exist for legacy or exploits.
// Names that an architecture lacks are skipped.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
	"delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
	"get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load",
	"kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
	"name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree",
	"perf_event_open", "pivot_root", "query_module", "quotactl", "quotactl_fd",
	"reboot", "request_key", "setns", "settimeofday", "stime", "swapoff", "swapon",
	"syslog", "_sysctl", "umount", "umount2", "uselib", "userfaultfd", "ustat",
	"vm86", "vm86old",
}

// nsCloneFlags are the namespace-creating flags of clone and unshare; a
// chute must not create namespaces, a user namespace above all, which would
// give it a full capability set again.
const nsCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// allowedPersonalities are the personality(2) values Docker allows: the
// default, a query, and the 32-bit and uname26 variants.
var allowedPersonalities = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

//go:generate go run mksysnum.go

// auditArches are the AUDIT_ARCH_* values, which the kernel gives a filter
// as seccomp_data.arch, of the architectures with a syscall table in
// zsysnum.go: those `make cross` ships, and amd64.
var auditArches = map[string]arch.AuditArch{
	"386":    arch.I386.ID,
	"amd64":  arch.X86_64.ID,
	"arm":    arch.ARM.ID,
	"arm64":  arch.AARCH64.ID,
	"mips":   arch.MIPS.ID,
	"mipsle": arch.MIPSEL.ID,
}

// x32SyscallBit marks, on amd64, a syscall of the x32 ABI, which shares
// the audit arch of x86_64 but has a table of its own.
const x32SyscallBit = 0x40000000

// seccompProgram is the chute's filter for the running architecture.
func seccompProgram() ([]bpf.RawInstruction, error) {
	return seccompProgramFor(runtime.GOARCH)
}

// seccompProgramFor assembles the deny list for goarch from the library's
// pieces, with syscall numbers from zsysnum.go: the library's Policy only
// knows the tables it ships, which lack MIPS, and only the running
// architecture. A prologue does what its Policy cannot express: syscalls
// of a foreign ABI (i386 on x86_64, x32) fail with ENOSYS, since the deny
// list only covers the native table and would let them through; and
// clone3, whose flags live in memory where a filter cannot read them,
// fails with ENOSYS so that libc falls back to clone, which is filtered.
//
// Argument checks load the halves of a 64-bit argument in the byte order
// of the process assembling the filter: the chute's shim, on the gateway.
func seccompProgramFor(goarch string) ([]bpf.RawInstruction, error) {
	audit, ok := auditArches[goarch]
	nrs := sysnums(goarch)
	if !ok || nrs == nil {
		return nil, fmt.Errorf("no syscall table for %s", goarch)
	}
	var denied []seccomp.SyscallWithConditions
	for _, name := range deniedSyscalls {
		if nr, ok := nrs[name]; ok {
			denied = append(denied, seccomp.SyscallWithConditions{Num: nr})
		}
	}
	var personality seccomp.ArgumentConditions
	for _, v := range allowedPersonalities {
		personality = append(personality, seccomp.Condition{Argument: 0, Operation: seccomp.NotEqual, Value: v})
	}
	nsFlags := func(flags uint64) seccomp.ArgumentConditions {
		return seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: flags}}
	}
	// Each syscall with argument checks is a group of its own: the checks
	// leave an argument where the syscall number was.
	groups := [][]seccomp.SyscallWithConditions{denied}
	for _, c := range []struct {
		name string
		cond seccomp.ArgumentConditions
	}{
		{"unshare", nsFlags(nsCloneFlags | unix.CLONE_NEWTIME)},
		{"clone", nsFlags(nsCloneFlags)},
		{"personality", personality},
	} {
		nr, ok := nrs[c.name]
		if !ok {
			return nil, fmt.Errorf("%s has no %s syscall", goarch, c.name)
		}
		groups = append(groups, []seccomp.SyscallWithConditions{{Num: nr, Conditions: []seccomp.ArgumentConditions{c.cond}}})
	}
	clone3, ok := nrs["clone3"]
	if !ok {
		return nil, fmt.Errorf("%s has no clone3 syscall", goarch)
	}
	loadNr := bpf.LoadAbsolute{Off: 0, Size: 4} // seccomp_data.nr
	var body []bpf.Instruction
	for i, group := range groups {
		insts, err := denyProgram(group)
		if err != nil {
			return nil, err
		}
		if i < len(groups)-1 {
			// Where the group allows, the next one starts, with the
			// syscall number loaded again; jumps are relative and the
			// length is unchanged.
			insts[len(insts)-1] = loadNr
		}
		body = append(body, insts...)
	}

	enosys := bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)}
	prologue := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(audit), SkipTrue: 1},
		enosys,
		loadNr,
	}
	if goarch == "amd64" {
		prologue = append(prologue,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
			enosys)
	}
	prologue = append(prologue,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: clone3, SkipFalse: 1},
		enosys)
	return bpf.Assemble(append(prologue, body...))
}

// denyProgram makes the syscalls of group fail with EPERM, under their
// conditions, and allows the rest: the instructions a Policy assembles
// for a group, ending in an allow.
func denyProgram(group []seccomp.SyscallWithConditions) ([]bpf.Instruction, error) {
	prog := seccomp.NewProgram()
	match, next := prog.NewLabel(), prog.NewLabel()
	for i, sc := range group {
		sc.Assemble(&prog, i < len(group)-1, match, next)
	}
	prog.SetLabel(match)
	prog.Ret(seccomp.ActionErrno) // EPERM
	prog.SetLabel(next)
	prog.Ret(seccomp.ActionAllow)
	return prog.Assemble()
}

package sandbox

import (
	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM in a chute. It follows Docker's default
// profile for a process without CAP_SYS_ADMIN: kernel keyring, module and
// kexec loading, BPF and perf, clock and swap administration, mounting and
// namespace switching, and syscalls that only exist for legacy or exploits.
// Names that the running architecture lacks are skipped.
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

func seccompPolicy() (seccomp.Policy, *arch.Info, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, nil, err
	}
	var names []string
	for _, n := range deniedSyscalls {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	var personality seccomp.ArgumentConditions
	for _, v := range allowedPersonalities {
		personality = append(personality, seccomp.Condition{Argument: 0, Operation: seccomp.NotEqual, Value: v})
	}
	nsFlags := func(flags uint64) seccomp.ArgumentConditions {
		return seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: flags}}
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno, Names: names},
			{Action: seccomp.ActionErrno, NamesWithCondtions: []seccomp.NameWithConditions{
				{Name: "unshare", Conditions: nsFlags(nsCloneFlags | unix.CLONE_NEWTIME)},
				{Name: "clone", Conditions: nsFlags(nsCloneFlags)},
				{Name: "personality", Conditions: personality},
			}},
		},
	}, info, nil
}

// seccompProgram is the deny-list policy behind a prologue that the library
// cannot express: syscalls of a foreign ABI (i386 on x86_64) fail with ENOSYS,
// since the policy only covers the native table and would let them through;
// and clone3, whose flags live in memory where a filter cannot read them,
// fails with ENOSYS so that libc falls back to clone, which is filtered.
func seccompProgram() ([]bpf.RawInstruction, error) {
	policy, info, err := seccompPolicy()
	if err != nil {
		return nil, err
	}
	body, err := policy.Assemble()
	if err != nil {
		return nil, err
	}
	enosys := bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)}
	prologue := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		enosys,
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_CLONE3, SkipFalse: 1},
		enosys,
	}
	return bpf.Assemble(append(prologue, body...))
}

// Package sandbox owns a chute's process tree and its isolation.
//
// A chute runs under a shim: a re-exec of the daemon binary, detached from
// the daemon (own session, no parent-death signal), one per chute or, as a
// Launcher starts them, one monitor process that is the shim of all its
// chutes (see below). The shim creates the chute in
// new mount, pid, uts, ipc and user namespaces, places it in its cgroup,
// collects its stdout and stderr into bounded log files, reaps it and records
// how it ended. The shim runs outside the chute's cgroup; the CPU time it
// spends on a chute's output is bounded by a share of the chute's CPU limit,
// a chute writing faster being made to wait in write. The daemon talks to the shim over a unix socket in the
// chute's state directory, so it can die, restart and re-adopt the chute with
// Attach while the chute and its logs keep going.
//
// The shim's thread that creates the chute first enters the chute's network
// namespace (the daemon's, or a new one with only lo) and a mount namespace
// of its own, where it builds the chute's /sys: only the chute's own links
// and cgroup, nothing of the host's devices or of other chutes. It goes
// back to the host's mount namespace once init is cloned, so that its copy
// of the host's mounts (other chutes' /data) does not outlive the start. A chute
// that keeps NET_RAW or NET_ADMIN is different: those act only on a
// network namespace its own user namespace owns, so its init is cloned
// into a new one, which the shim gives the daemon's eth0 and pins in the
// place of the daemon's (see netconf.MoveNetNS) before init goes on, and
// init shows its links in /sys itself.
//
// A device node of Spec.Devices reaches the chute as a node of its own,
// of the same number, owned by the chute's user (see openDeviceTrees):
// the host's node keeps the host's owner and mode.
//
// Inside the namespaces, a second re-exec of the binary (the init role) builds
// the chute's filesystem view, drops privileges, installs a seccomp filter
// and execs the chute's command, which becomes pid 1 of the chute. The shim
// decides all of it and sends init a plan of system calls (package pid1).
//
// Each of those re-execs is a start-up of the daemon binary, and they were
// most of a chute's start time; and a Go process per chute costs at least
// 0.64 MiB of private memory, 2.2 MiB as a shim. A Launcher, which the
// daemon uses, therefore starts its chutes under one monitor: a process of
// the same binary, detached as a shim is, that is the shim of every chute
// it starts (a thread, two log copiers and a socket each), so only init's
// start-up is left on the way to a chute's command. A monitor serves the
// chutes of one binary file: once the binary is replaced on disk, new
// chutes get a monitor of the new one. Start (the package function), and
// a Launcher that cannot run a monitor, exec a shim per chute. Init's
// start-up is cut short too: its role runs from package pid1's init
// function, before the binary's other packages are initialised.
//
// A monitor also keeps a warm init: one cloned before it has a chute, in
// new mount, pid, uts, ipc, user and network namespaces, its network
// namespace set up (lo, sysctls) and its runtime started, waiting on a
// socket (see warmInit). A start assigns it the chute: the monitor
// writes its uid and gid maps, sends it the chute's descriptors (output
// pipes, plan, trees, door) and, on cgroup v1, the tasks files of the
// chute's groups, which init's thread enters by writing 0 (no global
// lock); moves the chute's eth0, if the daemon gave it one, into its
// namespace and re-pins the daemon's on it; and sends the plan. Every
// chute started from a warm init owns its network namespace (its
// bounding set, not the namespace's owner, keeps a chute without
// NET_ADMIN from changing its links), so the warm init serves chutes
// that would own one anyway (NET_RAW, NET_ADMIN) and chutes without a
// network from the daemon: moving a link costs the kernel more than a
// warm init saves, so a chute joining the daemon's namespace is cloned
// into it at its start, as are chutes without a user namespace and
// chutes with a cgroup on cgroup v2 (where a process cannot enter a
// group without that lock, and is born in it instead). The monitor makes
// a warm init once it has started a chute that gains by one (a gateway
// whose chutes all join the daemon's namespace holds none), and the next
// once starts pause; it waits in a root of its own
// (the host's devices, /proc and /sys only) and costs about 0.7 MiB of
// private memory. A start its launcher gives up (its context ended) is
// given up in the monitor too: the init it made is killed.
//
// The shim and monitor roles are dispatched by the program's main
// function (or by importing package shimrole):
//
//	if len(os.Args) > 1 && os.Args[1] == sandbox.ShimCommand {
//		os.Exit(sandbox.ShimMain(os.Args[2:]))
//	}
//	if len(os.Args) > 1 && os.Args[1] == sandbox.MonitorCommand {
//		os.Exit(sandbox.MonitorMain(os.Args[2:]))
//	}
//
// This must happen before the program does anything else (no flag parsing,
// no daemon setup), since neither is the daemon. The init role needs
// nothing: linking this package links pid1.
//
// The chute's rootfs, data and policy directories may lie anywhere the
// daemon can reach, whatever the modes of their parents: the shim, as host
// root, clones them as detached mount trees (open_tree(2), Linux 5.2 or
// later) and init attaches those without looking the host paths up. What
// the host must provide: a data directory owned by the chute's host uid,
// and a service manager that does not kill the shims and monitors with the
// daemon (systemd: KillMode=process), since they run in the daemon's cgroup
// until the chutes' exit.
//
// A chute with a health command also has a door: a process its init
// starts, as the last step before the exec, from the same binary, so that
// it and every health command it runs for Chute.Check have exactly the
// chute's confinement (see package pid1). Its role too is played by
// package pid1's init function. Since it is exec'ed inside the chute's
// root, where no dynamic loader is, such chutes need a static binary
// (CGO_ENABLED=0, as make build makes it).
package sandbox

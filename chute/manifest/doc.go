// Package manifest parses and validates chute.yaml, the file in which a
// chute's developer tells the gateway what to run and what the chute may use.
//
// Parsing is strict: an unknown key, a duplicate key, a value of the wrong
// type or a second YAML document is an error, reported with its line and the
// dotted path of the field (for example
// `line 7: resources.memory: "64Mx" is not a quantity`). A manifest is read
// from an untrusted developer, so every limit the gateway relies on is
// checked here, and everything left out gets the safe default listed below.
//
// # Quantities
//
// Sizes ([Bytes]) are written as plain byte counts (a YAML integer or a
// string of digits) or with a binary suffix Ki, Mi, Gi, Ti (powers of 1024) or
// a decimal suffix k, M, G, T (powers of 1000): 64Mi, 500M, 1048576. In JSON
// they are numbers of bytes.
//
// Rates ([Rate]) are bits per second, written as a YAML integer or with an
// optional decimal prefix k (or K), M, G and the unit "bit" or "bps": 10Mbit,
// 500kbps, 1Gbit. Note that "bps" means bits per second here, unlike tc(8)
// where it means bytes. In JSON they are numbers of bits per second. 0 means
// unlimited.
//
// Durations ([Duration]) use Go's syntax (300ms, 5s, 1m30s), in YAML and JSON
// alike.
//
// # Defaults
//
// A key that is absent or null gets its default; a key with a value is checked
// against its range, so `cpu_weight: 0` is an error rather than a request for
// the default.
//
//	user                    0 (root of the chute's user namespace, which is
//	                        an unprivileged uid on the host); 0..65535
//	resources.cpu_weight    100; 1..10000
//	resources.cpu_max       1.0 core; more than 0, at most 64 (the gateway
//	                        refuses less than 0.01, the kernel's minimum)
//	resources.cpus          "" (every CPU); a CPU list in the kernel's
//	                        syntax ("0", "0-1", "0,2") of CPUs the gateway
//	                        has online (checked at install), enforced by
//	                        the cgroup cpuset controller
//	resources.memory        64Mi; at least 4Mi
//	resources.pids          64; 1..32768
//	resources.disk          64Mi (quota of /data); at least 1Mi
//	resources.tmp           16Mi (size of the tmpfs on /tmp, whose pages
//	                        count against memory); at least 1Mi
//	resources.bandwidth     egress and ingress 0 (unlimited)
//	restart.policy          on-failure; one of no, on-failure, always
//	restart.max_retries     5; 0 means unlimited
//	health                  none; when present exactly one of command or http
//	health.command          runs inside the chute exactly as its command does
//	                        (user, env, cwd, limits, cgroup), killed at the
//	                        timeout, with all it started once it ends; 4 KiB
//	                        of output kept; costs the chute about 1 MiB and
//	                        5 pids
//	health.http.path        /
//	health.interval         5s; at least 100ms
//	health.timeout          2s; at least 100ms
//	health.retries          3 failures in a row; 1..100
//	update.stable_for       3s; 0..update.timeout
//	update.timeout          30s; more than 0, at most 10m
//	stop_grace              5s; 0..5m
//	net.wan                 false (no access to the WAN)
//	net.lan, net.expose,
//	net.redirect, net.peers none
//	net.*.proto             tcp; tcp or udp
//	policy.hook             none
//	policy.hook.http.path   /
//	policy.grace            3s; 0..60s
//	devices                 none; at most 16, each {path, inside, access}:
//	                        path a host device node under /dev/, inside
//	                        where it appears in the chute (default path),
//	                        access some of r, w, m (default rw); the
//	                        sandbox's own entries (null, tty, pts, ...)
//	                        cannot be named
//	capabilities            none beyond the default set; only NET_RAW and
//	                        NET_ADMIN may be asked for (CAP_ prefix and
//	                        case optional), every other capability is
//	                        refused (see privileges.go)
//
// A resource policy is published to the chute in /paradrop/policy.json and
// POSTed to policy.hook; the gateway enforces it policy.grace later, or as
// soon as the chute acknowledges it (POST /api/v1/self/policy/ack with its
// token; see the README).
//
// Devices and capabilities are privileges: the gateway installs a chute
// that asks for them only if the operator allowed them to its developer.
package manifest

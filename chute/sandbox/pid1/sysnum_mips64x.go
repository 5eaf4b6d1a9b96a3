//go:build mips64 || mips64le

package pid1

// sysMoveMount is move_mount(2) in the n64 ABI.
const sysMoveMount = 5429

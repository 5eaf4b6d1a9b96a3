//go:build mips || mipsle

package pid1

// sysMoveMount is move_mount(2) in the o32 ABI.
const sysMoveMount = 4429

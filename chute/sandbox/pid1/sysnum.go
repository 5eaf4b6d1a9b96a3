//go:build !mips && !mipsle && !mips64 && !mips64le

package pid1

// sysMoveMount is move_mount(2), which package syscall does not number.
const sysMoveMount = 429

package archive

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Shift adds uid and gid to the owner and group of every file under root,
// root included, so that a tree extracted as 0:0 belongs to the base of a
// chute's user-namespace range. It never follows symlinks. It must run
// before the chute does: a running chute could swap a directory for a
// symlink between the walk and the chown.
func Shift(root string, uid, gid int) error {
	if uid < 0 || gid < 0 {
		return fmt.Errorf("shift %s: negative offset %d:%d", root, uid, gid)
	}
	// A file with several hard links must be shifted once, not per name.
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("shift: %w", &os.PathError{Op: "lstat", Path: p, Err: err})
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := inode{uint64(st.Dev), uint64(st.Ino)} // widths differ between architectures
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		newUID, newGID := int64(st.Uid)+int64(uid), int64(st.Gid)+int64(gid)
		// 2^32-1 is the invalid id (-1), which chown reads as "unchanged".
		if newUID >= math.MaxUint32 || newGID >= math.MaxUint32 {
			return fmt.Errorf("shift %s: owner %d:%d plus %d:%d is out of range", p, st.Uid, st.Gid, uid, gid)
		}
		if err := os.Lchown(p, int(newUID), int(newGID)); err != nil {
			return fmt.Errorf("shift: %w", err)
		}
		return nil
	})
}

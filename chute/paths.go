package chute

import "path/filepath"

// layout names the files of the daemon's data directory and its cgroups.
// One chute owns everything under chutes/NAME; staging holds uploads not yet
// committed.
type layout struct {
	root         string
	cgroupParent string // the cgroup under which every chute's group lives
}

func (l layout) staging() string             { return filepath.Join(l.root, "staging") }
func (l layout) chutes() string              { return filepath.Join(l.root, "chutes") }
func (l layout) chute(name string) string    { return filepath.Join(l.root, "chutes", name) }
func (l layout) versions(name string) string { return filepath.Join(l.chute(name), "versions") }
func (l layout) version(name, dir string) string {
	return filepath.Join(l.versions(name), dir)
}
func (l layout) rootfs(name, dir string) string { return filepath.Join(l.version(name, dir), "rootfs") }
func (l layout) dataImage(name string) string   { return filepath.Join(l.chute(name), "data.img") }
func (l layout) data(name string) string        { return filepath.Join(l.chute(name), "data") }
func (l layout) policy(name string) string      { return filepath.Join(l.chute(name), "policy") }
func (l layout) logs(name string) string        { return filepath.Join(l.chute(name), "logs") }
func (l layout) run(name string) string         { return filepath.Join(l.chute(name), "run") }
func (l layout) netns(name string) string       { return filepath.Join(l.root, "netns", name) }

func (l layout) cgroup(name string) string { return l.cgroupParent + "/" + name }

func (l layout) netnsDir() string { return filepath.Join(l.root, "netns") }

// monitors holds the chutes' monitors' sockets, pid files and log.
func (l layout) monitors() string { return filepath.Join(l.root, "monitor") }

// kept holds /data images of chutes removed with keep_data, by name.
func (l layout) kept() string                 { return filepath.Join(l.root, "kept") }
func (l layout) keptImage(name string) string { return filepath.Join(l.kept(), name+".img") }

// keptSlot holds the uid slot a kept image's files belong to (kept.go).
func (l layout) keptSlot(name string) string { return filepath.Join(l.kept(), name+".slot") }

// Package soak holds the daemon's soak test: the real `paradrop serve`,
// network and all, taken through hundreds of install/update/remove cycles
// of a chute, after which it must hold no more of the host (mounts, loop
// devices, cgroups, links, switch ports, namespaces, staged uploads, fds)
// and no more memory than before. It is a package of its own so that it
// runs beside the other packages' tests.
package soak

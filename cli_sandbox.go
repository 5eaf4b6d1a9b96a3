package main

// The binary re-executes itself as each chute's shim (its supervisor, which
// outlives the daemon) and as the chute's init (which builds the sandbox
// before exec'ing the chute's command). Neither role needs an entry: both
// are played before main, by packages chute/sandbox/shimrole and
// chute/sandbox/pid1.
import _ "paradrop/chute/sandbox/shimrole"

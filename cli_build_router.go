//go:build router

package main

// routerBuild: the gateways' builds (make cross, -tags router) leave out
// what a gateway does not run, the fleet controller and the demo's
// simulated home: they run on an operator's or a developer's machine, and
// weigh 0.17 MiB of the mipsle binary's gzip. The gateway's own USP agent,
// /metrics and everything serve does stay.
const routerBuild = true

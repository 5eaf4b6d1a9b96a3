//go:build router

package main

// The gateways' builds (make cross, -tags router) leave out what a gateway
// does not run, the fleet controller and the demo's simulated home, with
// the packages only they import (fleet, examples and its sample chutes'
// code, image/jpeg): their files are built with !router. Their commands
// answer in one line where to find them. The gateway's own USP agent,
// /metrics and everything serve does stay.
func init() {
	registerAbsent("demo")
	registerAbsent("fleet")
}

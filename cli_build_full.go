//go:build !router

package main

// routerBuild is false in full builds: every command is there.
const routerBuild = false

// Package ovsdb is a small client for the OVSDB management protocol
// (RFC 7047), enough for the gateway daemon to program a local Open vSwitch
// without ovs-vsctl.
//
// A Client speaks JSON-RPC over a unix or tcp stream socket and is safe for
// concurrent use: requests carry numeric ids and responses are matched to
// their callers, while the server's "echo" requests and "update"
// notifications are handled by the single reader goroutine.
//
// Column values use these Go types, both when encoding rows and when
// decoding them from the server:
//
//	string, int64 (int is accepted when encoding), float64, bool  atoms
//	UUID                                                          ["uuid", "..."]
//	NamedUUID                                                     ["named-uuid", "..."]
//	Set                                                           ["set", [...]]
//	Map                                                           ["map", [[k, v], ...]]
//
// Numbers with an integral value decode as int64, even in real columns.
// The server may send a set of exactly one element as the bare atom; the
// Row accessors hide that difference.
//
// On top of the protocol, vswitch.go provides the few idempotent operations
// on the Open_vSwitch database that the daemon needs (EnsureBridge, AddPort,
// OFPort, ...), each expressed as OVSDB transactions.
package ovsdb

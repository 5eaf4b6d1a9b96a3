// Package ofp is paradrop's OpenFlow 1.3 wire codec: the byte layout of every
// message a controller exchanges with an Open vSwitch bridge, including the
// Nicira extensions (conntrack, NAT, NXM registers and ct_* match fields)
// that our chute networking relies on.
//
// The package owns encoding and decoding only: it opens no connections and
// keeps no state. Decoding never panics and never reads past the length a
// header announces; malformed input yields a *DecodeError. Encoding computes
// every length and padding field, so callers never set them. Everything that
// decodes re-encodes to the same bytes, including extensions the package does
// not model (kept as raw bytes).
//
// Each message marshals to JSON in the layout used by os-ken/Ryu's OpenFlow
// 1.3 parser ({"OFPFlowMod": {...}}) so decodes can be compared with other
// implementations and read by people.
package ofp

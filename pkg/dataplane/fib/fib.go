package fib

import "errors"

// MaxValue is the largest value a route can carry. The top bit is reserved
// for the IPv4 trie's child-ply marker.
const MaxValue = 1<<31 - 1

var (
	// ErrPrefixLen reports a prefix length outside 0..32 (IPv4) or 0..128 (IPv6).
	ErrPrefixLen = errors.New("fib: prefix length out of range")
	// ErrHostBits reports a prefix address with bits set beyond its length.
	ErrHostBits = errors.New("fib: host bits set in prefix address")
	// ErrValue reports a value of 0 or above MaxValue.
	ErrValue = errors.New("fib: route value must be in 1..MaxValue")
	// ErrTxnDone reports use of a transaction after its Update returned.
	ErrTxnDone = errors.New("fib: transaction used after Update returned")
)

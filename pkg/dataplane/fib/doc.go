// Package fib holds the forwarding information base: the longest-prefix-match
// tables, one per VRF and address family, that dataplane worker goroutines
// consult for every packet.
//
// # Concurrency: RCU with the garbage collector as grace period
//
// A table publishes immutable snapshots through an atomic.Pointer. A worker
// calls Snapshot once per frame and then Lookup as often as it likes: no
// locks, no atomics, no allocation, and the answers of one snapshot are
// always those of a single published version. Writers batch their changes in
// Update; the transaction copies only the nodes it touches (each at most once),
// and the whole batch becomes visible with one pointer store, or not at all
// if the callback returns an error or panics.
//
// Nothing here ever writes to memory that a published snapshot can reach, so
// readers need no quiescent-state reporting. Go's garbage collector provides
// the RCU grace period: a superseded snapshot, and any node or arena only it
// references, is freed once no worker still holds a pointer to it. The cost
// of that convenience is that a worker holding one snapshot for a long time
// pins everything it references; load a fresh one per frame.
//
// Writers are serialised by a mutex inside each table. The control-plane
// accessors Get and Walk take that mutex too, so they must not be called from
// inside an Update callback (use the transaction's Get and Len instead), and
// Update must not be called from inside another Update of the same table.
//
// # IPv4: 16-8-8 multiway trie
//
// IP4 is a VPP-style mtrie: a 65536-slot root indexed by the top 16 address
// bits, then 256-slot plies for bits 15..8 and 7..0. A slot holds either a
// leaf (the caller's value, 0 for "no route") or the index of a child ply.
// Prefixes shorter than a ply's stride are expanded over every slot they
// cover; writer-side metadata remembers which prefix length supplied each
// leaf so that more specific prefixes keep precedence and a delete can
// restore the next less specific covering prefix.
//
// Lookup reads the 1 KiB root directory that is embedded in the snapshot
// (so it stays in L1 while a frame is processed) and then at most three
// dependent trie slots: root, /24 ply, /32 ply. Routes of length <= 16 resolve
// after the first slot, <= 24 after the second.
//
// The root is split into 256 chunks of 256 slots so that a transaction only
// copies the chunks it touches (1 KiB each) rather than 256 KiB. Chunks and
// plies live by value in one pointer-free slice (the arena, 1 KiB per ply):
// that keeps slots at 32 bits, lets a slot name its child by index, and
// keeps the table out of the garbage collector's mark work. A transaction
// only appends to the arena; ply indices below the published length are
// never written again. Plies that a transaction copies or frees become
// garbage in place; once garbage exceeds half of the live plies, the commit
// compacts the live plies into a fresh arena (amortised O(1) per freed
// ply) and the old arena is released by the GC with the last snapshot using
// it.
//
// Memory: 1 KiB per ply for readers plus 260 bytes of writer metadata per
// ply, up to 1.5x that for not yet compacted garbage and arena headroom, plus
// the writer's authoritative prefix set (Go maps, roughly 20-40 bytes per
// route). An empty table shares one all-zero chunk. A route of length
// <= 16 needs no ply, one of length 17..24 at most one ply shared with every
// other route in its /16, and one of length 25..32 at most one more ply
// shared within its /24. So the cost is about 1.3 KiB per populated /16 plus
// per /24 holding longer routes: a random internet-like table of 1M routes
// uses about 99 000 plies, about 205 heap bytes per route; sparse small
// tables cost far more per route (1000 random routes: about 2.6 KiB each).
// A single-route transaction allocates a 1 KiB snapshot and copies one root
// chunk and up to two plies (a few microseconds including amortised
// compaction on a 1M-route table). A prefix shorter than /16 is expanded over
// up to 65536 root slots and into every ply below them that inherits leaves
// from it, which is what makes lookups cheap: changing a /8 on a full table
// copies 1/256 of it. The default route is the exception: it is kept in the
// snapshot outside the trie (a leaf of 0 falls back to it), so a default
// route change, e.g. an uplink failover, costs O(1) instead of copying
// nearly every ply.
//
// # IPv6: one hash table per prefix length, plus a /32 aggregate index
//
// IP6 keeps, for each prefix length present, an open-addressing hash table
// (linear probing, load factor <= 1/2, backward-shift deletes, a seeded
// multiply-xor mixer) keyed by the masked address. Probing every present
// length longest first would cost one probe per length, and real IPv6 tables
// use 30-40 distinct lengths, most of them longer than /32. So the snapshot
// also carries a /32 aggregate index: for every /32 containing prefixes
// longer than /32 it records which of those lengths occur there (usually one
// to three). Lookup probes exactly those lengths, longest first, and then the
// present lengths <= 32, longest first (the sorted list is kept in the
// snapshot), stopping at the first hit. That is correct because any prefix
// longer than /32 that contains an address lies in the address's /32.
//
// A binary search on lengths with markers (Waldvogel et al.) bounds the
// probes at log2 of the number of lengths, but every marker stores a
// precomputed best match that must be refreshed whenever a covering prefix
// is added or removed (a default route touches all of them) and a change in
// the set of lengths reshapes the search and moves every marker. The
// aggregate index gives the same few-probe lookups on internet-like tables
// while keeping updates local; its worst case is an address whose /32
// contains many different long lengths.
//
// Tables are copied on write per length, and within a length per page: a
// table bigger than 1024 slots is split by the hash's top bits into
// independent 1024-slot (24 KiB) pages, so a transaction copies the page
// list of each length it changes plus the pages it writes, and the aggregate
// index's pages only where a /32 gains or loses a length. A single-route
// update on a 100 000-route table costs a few microseconds instead of
// copying a multi-megabyte length table; the price is one more, usually
// cached, read (the page list) per probe. Memory is 24 bytes per hash slot
// at load factor 1/4..1/2, i.e. 48 to 96 bytes per route, plus the aggregate
// index and its writer-side counts: about 150-160 heap bytes per route in
// total as measured.
//
// Values are the caller's load-balance indices, 1..MaxValue; 0 means "no
// route" and is never stored. The top bit is reserved because IPv4 slots use
// it to tell leaves from child plies; IPv6 applies the same limit so that one
// index space serves both families.
package fib

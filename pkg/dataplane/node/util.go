package node

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/buffer"
	"github.com/vecnet/vecnet/pkg/header"
)

func nowUnixNano() int64 { return time.Now().UnixNano() }

// tokenBucket is a per-worker rate limiter driven by the round's clock
// (graph.Context.Now), so it costs no clock read per packet.
type tokenBucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newTokenBucket(rate, burst float64) tokenBucket {
	return tokenBucket{rate: rate, burst: burst, tokens: burst}
}

func (t *tokenBucket) take(now time.Time) bool {
	if !t.last.IsZero() {
		t.tokens = min(t.burst, t.tokens+now.Sub(t.last).Seconds()*t.rate)
	}
	t.last = now
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}

// resolveLimiter remembers when a request (ARP or NS) was last sent for a
// target, in a small direct-mapped table: a burst of packets to one
// unresolved neighbour triggers one request per interval, not one each.
type resolveLimiter struct {
	slots [256]struct {
		key  [16]byte
		ifx  uint32
		last time.Time
	}
}

const resolveInterval = 100 * time.Millisecond

func (r *resolveLimiter) allow(ifx uint32, key [16]byte, now time.Time) bool {
	h := mix64(uint64(ifx)*0x9e3779b97f4a7c15^uint64(key[12])<<24^uint64(key[13])<<16^uint64(key[14])<<8^uint64(key[15])^uint64(key[7])<<32) & 0xff
	s := &r.slots[h]
	if s.key == key && s.ifx == ifx && now.Sub(s.last) < resolveInterval {
		return false
	}
	s.key, s.ifx, s.last = key, ifx, now
	return true
}

func fmtIP4(pkt []byte) string {
	if header.ValidateIPv4(pkt) != header.IPv4OK {
		return fmt.Sprintf("malformed ipv4 (%d bytes)", len(pkt))
	}
	ip := header.IPv4(pkt)
	return fmt.Sprintf("%s -> %s proto %d ttl %d len %d", netip.AddrFrom4(ip.SourceAddress()), netip.AddrFrom4(ip.DestinationAddress()), ip.Protocol(), ip.TTL(), ip.TotalLength())
}

func fmtIP6(pkt []byte) string {
	if header.ValidateIPv6(pkt) != header.IPv6OK {
		return fmt.Sprintf("malformed ipv6 (%d bytes)", len(pkt))
	}
	ip := header.IPv6(pkt)
	return fmt.Sprintf("%s -> %s next-header %d hop-limit %d payload %d", netip.AddrFrom16(ip.SourceAddress()), netip.AddrFrom16(ip.DestinationAddress()), ip.NextHeader(), ip.HopLimit(), ip.PayloadLength())
}

// trustHdrLen replaces a GSO super-packet's HdrLen, which the kernel fills
// with the length of the skb's linear part (a hint that may include
// payload, or fall short of the headers), with the real length of the IP
// and TCP/UDP headers: MTU checks on segments (ip4/ip6-rewrite) and the
// segment size they lower must use what gso.Segment will actually build.
// It reports false for a super-packet without a TCP or UDP header right
// after the IP header, which nothing downstream could segment.
func trustHdrLen(m *buffer.Meta, pkt []byte, l3 int, proto uint8) bool {
	l4 := l3
	switch proto {
	case header.ProtocolTCP:
		if len(pkt) < l3+header.TCPMinimumSize {
			return false
		}
		l4 += int(pkt[l3+12]>>4) * 4
		if l4 < l3+header.TCPMinimumSize || l4 > len(pkt) {
			return false
		}
	case header.ProtocolUDP:
		l4 += header.UDPMinimumSize
		if l4 > len(pkt) {
			return false
		}
	default:
		return false
	}
	m.HdrLen = uint16(l4)
	return true
}

// csumOffloadInside checks a partial checksum's offsets: the checksum must
// start after the IP header and its field lie inside the packet. The
// receiving kernel writes the sum where the offsets say, so offsets from a
// hostile sender on the underlay (a veth peer can set any) would otherwise
// have it overwrite the IP header of a packet delivered to a pod.
func csumOffloadInside(m *buffer.Meta, l3 int) bool {
	if m.Flags&buffer.FlagCsumPart == 0 {
		return true
	}
	return int(m.CsumStart) >= l3 && int(m.CsumStart)+int(m.CsumOffset)+2 <= int(m.Len)
}

// workerQueues holds each worker's list of rx queues, published by the
// control plane with one atomic store so that a polling worker never locks.
type workerQueues[T any] []atomic.Pointer[[]T]

func (wq workerQueues[T]) set(w int, q []T) { wq[w].Store(&q) }

func (wq workerQueues[T]) get(w int) []T {
	if p := wq[w].Load(); p != nil {
		return *p
	}
	return nil
}

// Package tuntest is an in-memory stand-in for a tun/tap device, for tests
// that run the real graph (tun-input to interface-output) without root: a
// SOCK_SEQPACKET socket pair keeps packet boundaries the way a tun
// descriptor does, so the dataplane's readv/write code runs unchanged on one
// end while the test plays the pod's kernel on the other.
package tuntest

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/vecnet/vecnet/pkg/dataplane/driver/tun"
	"golang.org/x/sys/unix"
)

// Device is the pod side of a fake tun.
type Device struct {
	// FD is the dataplane's end: register it as an interface's TxFD and
	// rx queue.
	FD   int
	peer int
}

// New returns a fake device. Close it when done.
func New() (*Device, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// Room for a burst of 64 KiB super-packets in either direction.
	for _, fd := range fds {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	return &Device{FD: fds[0], peer: fds[1]}, nil
}

// Close closes both ends.
func (d *Device) Close() {
	unix.Close(d.FD)
	unix.Close(d.peer)
}

// VnetHdr is the virtio-net header the kernel would put in front of a
// packet (all zero: no offload).
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

func (h VnetHdr) encode() []byte {
	b := make([]byte, tun.VnetHdrLen)
	b[0], b[1] = h.Flags, h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
	return b
}

// Send plays the pod sending pkt (an IP packet for tun, a frame for tap).
func (d *Device) Send(pkt []byte, h VnetHdr) error {
	return unix.Sendmsg(d.peer, append(h.encode(), pkt...), nil, nil, 0)
}

// SendRaw sends bytes as they are, virtio header included (or not).
func (d *Device) SendRaw(b []byte) error { return unix.Sendmsg(d.peer, b, nil, nil, 0) }

// ErrTimeout is returned by Recv when nothing arrived.
var ErrTimeout = errors.New("tuntest: no packet")

// Recv returns the next packet the dataplane wrote, waiting up to timeout.
func (d *Device) Recv(timeout time.Duration) ([]byte, VnetHdr, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 70000)
	for {
		n, _, err := unix.Recvfrom(d.peer, buf, 0)
		if err == nil {
			if n < tun.VnetHdrLen {
				return nil, VnetHdr{}, errors.New("tuntest: packet without virtio-net header")
			}
			h := VnetHdr{
				Flags: buf[0], GSOType: buf[1],
				HdrLen:     binary.LittleEndian.Uint16(buf[2:]),
				GSOSize:    binary.LittleEndian.Uint16(buf[4:]),
				CsumStart:  binary.LittleEndian.Uint16(buf[6:]),
				CsumOffset: binary.LittleEndian.Uint16(buf[8:]),
			}
			return append([]byte(nil), buf[tun.VnetHdrLen:n]...), h, nil
		}
		if err != unix.EAGAIN {
			return nil, VnetHdr{}, err
		}
		if time.Now().After(deadline) {
			return nil, VnetHdr{}, ErrTimeout
		}
		time.Sleep(100 * time.Microsecond)
	}
}

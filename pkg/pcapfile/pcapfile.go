// Package pcapfile reads and writes classic libpcap capture files, the format
// read by `tcpdump -r` and Wireshark (not pcapng).
//
// A file is a 24-byte global header followed by records, each a 16-byte
// record header and the captured bytes. The magic number tells readers the
// byte order and the timestamp resolution: 0xa1b2c3d4 for microseconds,
// 0xa1b23c4d for nanoseconds. Writer writes little-endian files; Reader reads
// both byte orders and both resolutions.
//
// Reference: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html
package pcapfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Link types (LINKTYPE_* values of the tcpdump.org registry) used by vecnet.
const (
	// LinkTypeEthernet: IEEE 802.3 Ethernet frames (tap interfaces).
	LinkTypeEthernet uint32 = 1
	// LinkTypeRaw: raw IPv4 or IPv6 packets without a link-layer header
	// (tun interfaces).
	LinkTypeRaw uint32 = 101
)

// Magic numbers, as read in the file's byte order.
const (
	MagicMicroseconds uint32 = 0xa1b2c3d4
	MagicNanoseconds  uint32 = 0xa1b23c4d
)

// DefaultSnaplen is the snapshot length used when WriteHeader is given 0;
// it is tcpdump's default and large enough for 64 KiB GSO super-packets.
const DefaultSnaplen uint32 = 262144

const (
	versionMajor     = 2
	versionMinor     = 4
	fileHeaderLen    = 24
	recordHeaderLen  = 16
	linkTypeMask     = 0x0fffffff // the top 4 bits may carry FCS information
	maxRecordCapture = 1 << 26    // sanity bound for a corrupt caplen
)

// Resolution is the timestamp resolution of a file.
type Resolution int

const (
	Nanosecond Resolution = iota
	Microsecond
)

func (r Resolution) String() string {
	switch r {
	case Nanosecond:
		return "nanosecond"
	case Microsecond:
		return "microsecond"
	}
	return fmt.Sprintf("Resolution(%d)", int(r))
}

// Writer writes a pcap file: WriteHeader once, then WritePacket per packet.
// Each call issues exactly one Write to the underlying writer, so wrap files
// in a bufio.Writer when writing many packets.
type Writer struct {
	w        io.Writer
	res      Resolution
	snaplen  uint32
	linkType uint32
	started  bool
	buf      []byte
}

// NewWriter returns a Writer with the given timestamp resolution.
func NewWriter(w io.Writer, res Resolution) *Writer {
	return &Writer{w: w, res: res}
}

// WriteHeader writes the global header. snaplen 0 means DefaultSnaplen;
// packets longer than snaplen are truncated by WritePacket.
func (w *Writer) WriteHeader(linkType uint32, snaplen uint32) error {
	if w.started {
		return errors.New("pcapfile: header already written")
	}
	if linkType > linkTypeMask {
		return fmt.Errorf("pcapfile: invalid link type %d", linkType)
	}
	var magic uint32
	switch w.res {
	case Nanosecond:
		magic = MagicNanoseconds
	case Microsecond:
		magic = MagicMicroseconds
	default:
		return fmt.Errorf("pcapfile: invalid resolution %v", w.res)
	}
	if snaplen == 0 {
		snaplen = DefaultSnaplen
	}
	var h [fileHeaderLen]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], magic)
	le.PutUint16(h[4:], versionMajor)
	le.PutUint16(h[6:], versionMinor)
	// h[8:16]: thiszone and sigfigs, always 0.
	le.PutUint32(h[16:], snaplen)
	le.PutUint32(h[20:], linkType)
	if _, err := w.w.Write(h[:]); err != nil {
		return err
	}
	w.started = true
	w.snaplen = snaplen
	w.linkType = linkType
	return nil
}

// LinkType returns the link type given to WriteHeader.
func (w *Writer) LinkType() uint32 { return w.linkType }

// Snaplen returns the snapshot length written in the header.
func (w *Writer) Snaplen() uint32 { return w.snaplen }

// WritePacket writes one record. data is truncated to the snapshot length;
// origLen is the packet's length on the wire, 0 (or anything shorter than
// data) meaning len(data).
func (w *Writer) WritePacket(ts time.Time, data []byte, origLen int) error {
	if !w.started {
		return errors.New("pcapfile: WritePacket before WriteHeader")
	}
	if origLen < len(data) {
		origLen = len(data)
	}
	if origLen > math.MaxUint32 {
		return fmt.Errorf("pcapfile: packet length %d too large", origLen)
	}
	sec := ts.Unix()
	if sec < 0 || sec > math.MaxUint32 {
		return fmt.Errorf("pcapfile: timestamp %v outside the pcap range (1970 to 2106)", ts)
	}
	frac := uint32(ts.Nanosecond())
	if w.res == Microsecond {
		frac /= 1000
	}
	capLen := len(data)
	if uint64(capLen) > uint64(w.snaplen) {
		capLen = int(w.snaplen)
	}
	n := recordHeaderLen + capLen
	if cap(w.buf) < n {
		w.buf = make([]byte, n)
	}
	b := w.buf[:n]
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(sec))
	le.PutUint32(b[4:], frac)
	le.PutUint32(b[8:], uint32(capLen))
	le.PutUint32(b[12:], uint32(origLen))
	copy(b[recordHeaderLen:], data[:capLen])
	_, err := w.w.Write(b)
	return err
}

// Packet is one record read from a file.
type Packet struct {
	Timestamp time.Time
	// Data holds the captured bytes (at most the snapshot length).
	Data []byte
	// OrigLen is the length of the packet on the wire.
	OrigLen int
}

// Reader reads a pcap file.
type Reader struct {
	r        io.Reader
	order    binary.ByteOrder
	res      Resolution
	major    uint16
	minor    uint16
	snaplen  uint32
	linkType uint32
	hdr      [recordHeaderLen]byte
}

// NewReader reads the global header from r.
func NewReader(r io.Reader) (*Reader, error) {
	var h [fileHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("pcapfile: reading file header: %w", err)
	}
	rd := &Reader{r: r}
	switch {
	case binary.LittleEndian.Uint32(h[0:]) == MagicMicroseconds:
		rd.order, rd.res = binary.LittleEndian, Microsecond
	case binary.LittleEndian.Uint32(h[0:]) == MagicNanoseconds:
		rd.order, rd.res = binary.LittleEndian, Nanosecond
	case binary.BigEndian.Uint32(h[0:]) == MagicMicroseconds:
		rd.order, rd.res = binary.BigEndian, Microsecond
	case binary.BigEndian.Uint32(h[0:]) == MagicNanoseconds:
		rd.order, rd.res = binary.BigEndian, Nanosecond
	default:
		return nil, fmt.Errorf("pcapfile: not a pcap file (magic %#08x)", binary.BigEndian.Uint32(h[0:]))
	}
	rd.major = rd.order.Uint16(h[4:])
	rd.minor = rd.order.Uint16(h[6:])
	if rd.major != versionMajor {
		return nil, fmt.Errorf("pcapfile: unsupported version %d.%d", rd.major, rd.minor)
	}
	rd.snaplen = rd.order.Uint32(h[16:])
	rd.linkType = rd.order.Uint32(h[20:]) & linkTypeMask
	return rd, nil
}

// LinkType returns the file's link type (LINKTYPE_* value).
func (r *Reader) LinkType() uint32 { return r.linkType }

// Snaplen returns the file's snapshot length.
func (r *Reader) Snaplen() uint32 { return r.snaplen }

// Resolution returns the file's timestamp resolution.
func (r *Reader) Resolution() Resolution { return r.res }

// Version returns the file format version (2.4 for files written here).
func (r *Reader) Version() (major, minor uint16) { return r.major, r.minor }

// ReadPacket reads the next record. It returns io.EOF after the last record
// and io.ErrUnexpectedEOF (wrapped) for a truncated one.
func (r *Reader) ReadPacket() (Packet, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Packet{}, fmt.Errorf("pcapfile: truncated record header: %w", err)
		}
		return Packet{}, err // io.EOF: clean end of file
	}
	sec := r.order.Uint32(r.hdr[0:])
	frac := r.order.Uint32(r.hdr[4:])
	capLen := r.order.Uint32(r.hdr[8:])
	origLen := r.order.Uint32(r.hdr[12:])
	if capLen > maxRecordCapture && capLen > r.snaplen {
		return Packet{}, fmt.Errorf("pcapfile: record length %d exceeds snaplen %d", capLen, r.snaplen)
	}
	nsec := int64(frac)
	if r.res == Microsecond {
		nsec *= 1000
	}
	if nsec >= int64(time.Second) {
		return Packet{}, fmt.Errorf("pcapfile: invalid timestamp fraction %d", frac)
	}
	data := make([]byte, capLen)
	if _, err := io.ReadFull(r.r, data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, fmt.Errorf("pcapfile: truncated record data: %w", err)
	}
	return Packet{
		Timestamp: time.Unix(int64(sec), nsec),
		Data:      data,
		OrigLen:   int(origLen),
	}, nil
}

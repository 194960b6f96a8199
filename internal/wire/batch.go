package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Kind says how a series' value is to be read.
type Kind uint8

// Series kinds.
const (
	// KindCounter: Value is the increase of the counter over the batch interval.
	KindCounter Kind = 1
	// KindGauge: Value is the last observed value.
	KindGauge Kind = 2
	// KindHistogram: Hist holds the observations made during the interval.
	KindHistogram Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Label is one name=value pair of a series.
type Label struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Bucket is one bucket of a log-linear histogram: Count observations fell
// into the bucket numbered Index (the layout is defined by the producer's
// histogram package and is the same on every host).
type Bucket struct {
	Index int32  `json:"index"`
	Count uint64 `json:"count"`
}

// Histogram is the distribution of the observations of one interval.
type Histogram struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []Bucket `json:"buckets,omitempty"` // sorted by Index
}

// Series is one signal with one label set within a batch.
type Series struct {
	Signal string     `json:"signal"`
	Labels []Label    `json:"labels,omitempty"` // sorted by Name
	Kind   Kind       `json:"kind"`
	Value  float64    `json:"value"`
	Hist   *Histogram `json:"hist,omitempty"`
}

// Label returns the value of the named label, or "".
func (s *Series) Label(name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Batch is everything one host measured during one interval. Collectors
// publish one batch per interval on SamplesSubject(Cluster, Host).
type Batch struct {
	Cluster  string        `json:"cluster"`
	Host     string        `json:"host"`
	Seq      uint64        `json:"seq"` // increases by one per batch of a collector run
	Start    time.Time     `json:"start"`
	Interval time.Duration `json:"interval"`
	Series   []Series      `json:"series"`
}

// Limits that a decoder enforces so that a hostile message cannot make it
// allocate without bound.
const (
	MaxSeries     = 1 << 17
	MaxLabels     = 32
	MaxBuckets    = 1 << 12
	MaxStringSize = 4096
)

// batch encoding: magic 'M' 'B', version byte, then fields in order with
// uvarints, zigzag varints, float64 bits (little endian) and
// length-prefixed strings.
var batchMagic = [2]byte{'M', 'B'}

// ErrNotBatch is returned for data that is not a sample batch at all.
var ErrNotBatch = errors.New("not an mciv sample batch")

// AppendBatch appends the binary encoding of b to dst.
func AppendBatch(dst []byte, b *Batch) []byte {
	dst = append(dst, batchMagic[0], batchMagic[1], Version)
	dst = appendString(dst, b.Cluster)
	dst = appendString(dst, b.Host)
	dst = binary.AppendUvarint(dst, b.Seq)
	dst = binary.AppendVarint(dst, b.Start.UnixNano())
	dst = binary.AppendVarint(dst, int64(b.Interval))
	dst = binary.AppendUvarint(dst, uint64(len(b.Series)))
	for i := range b.Series {
		s := &b.Series[i]
		dst = appendString(dst, s.Signal)
		dst = append(dst, byte(s.Kind))
		dst = binary.AppendUvarint(dst, uint64(len(s.Labels)))
		for _, l := range s.Labels {
			dst = appendString(dst, l.Name)
			dst = appendString(dst, l.Value)
		}
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Value))
		if s.Kind == KindHistogram {
			h := s.Hist
			if h == nil {
				h = &Histogram{}
			}
			dst = binary.AppendUvarint(dst, h.Count)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(h.Sum))
			dst = binary.AppendUvarint(dst, uint64(len(h.Buckets)))
			prev := int64(0)
			for _, bk := range h.Buckets {
				// Buckets are sorted: delta-encode the indexes.
				dst = binary.AppendVarint(dst, int64(bk.Index)-prev)
				prev = int64(bk.Index)
				dst = binary.AppendUvarint(dst, bk.Count)
			}
		}
	}
	return dst
}

// EncodeBatch returns the binary encoding of b.
func EncodeBatch(b *Batch) []byte {
	return AppendBatch(make([]byte, 0, 64+len(b.Series)*48), b)
}

type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("byte %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) byte1(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.buf) {
		d.fail("truncated before %s", what)
		return 0
	}
	b := d.buf[d.off]
	d.off++
	return b
}

func (d *decoder) float(what string) float64 {
	if d.err != nil {
		return 0
	}
	if len(d.buf)-d.off < 8 {
		d.fail("truncated before %s", what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf[d.off:]))
	d.off += 8
	return v
}

func (d *decoder) str(what string) string {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if n > MaxStringSize || n > uint64(len(d.buf)-d.off) {
		d.fail("%s length %d out of range", what, n)
		return ""
	}
	s := string(d.buf[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}

// count reads a length that must not exceed max nor the bytes left
// (every element takes at least minSize bytes).
func (d *decoder) count(what string, max uint64, minSize int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > max || n*uint64(minSize) > uint64(len(d.buf)-d.off) {
		d.fail("%s %d out of range", what, n)
		return 0
	}
	return int(n)
}

// DecodeBatch decodes a batch written by AppendBatch. It never panics; any
// malformed input gives an error saying what and where.
func DecodeBatch(data []byte) (*Batch, error) {
	if len(data) < 3 || data[0] != batchMagic[0] || data[1] != batchMagic[1] {
		return nil, ErrNotBatch
	}
	if data[2] != Version {
		return nil, fmt.Errorf("sample batch schema version %d, this build reads %d", data[2], Version)
	}
	d := &decoder{buf: data, off: 3}
	b := &Batch{}
	b.Cluster = d.str("cluster")
	b.Host = d.str("host")
	b.Seq = d.uvarint("seq")
	b.Start = time.Unix(0, d.varint("start")).UTC()
	b.Interval = time.Duration(d.varint("interval"))
	n := d.count("series count", MaxSeries, 11)
	if d.err == nil && n > 0 {
		b.Series = make([]Series, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		s := &b.Series[i]
		s.Signal = d.str("signal")
		s.Kind = Kind(d.byte1("kind"))
		if d.err == nil && (s.Kind < KindCounter || s.Kind > KindHistogram) {
			d.fail("series %d: unknown kind %d", i, s.Kind)
		}
		nl := d.count("label count", MaxLabels, 2)
		if nl > 0 {
			s.Labels = make([]Label, nl)
		}
		for j := 0; j < nl && d.err == nil; j++ {
			s.Labels[j].Name = d.str("label name")
			s.Labels[j].Value = d.str("label value")
		}
		s.Value = d.float("value")
		if s.Kind == KindHistogram && d.err == nil {
			h := &Histogram{}
			h.Count = d.uvarint("histogram count")
			h.Sum = d.float("histogram sum")
			nb := d.count("bucket count", MaxBuckets, 2)
			if nb > 0 {
				h.Buckets = make([]Bucket, nb)
			}
			idx := int64(0)
			for k := 0; k < nb && d.err == nil; k++ {
				idx += d.varint("bucket index")
				if idx < math.MinInt32 || idx > math.MaxInt32 {
					d.fail("bucket index %d out of range", idx)
				}
				h.Buckets[k] = Bucket{Index: int32(idx), Count: d.uvarint("bucket count")}
			}
			s.Hist = h
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("sample batch: %w", d.err)
	}
	if d.off != len(data) {
		return nil, fmt.Errorf("sample batch: %d trailing bytes", len(data)-d.off)
	}
	if err := ValidToken(b.Cluster); err != nil {
		return nil, fmt.Errorf("sample batch: cluster: %w", err)
	}
	if err := ValidToken(b.Host); err != nil {
		return nil, fmt.Errorf("sample batch: host: %w", err)
	}
	return b, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

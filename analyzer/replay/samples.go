package replay

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// Samples files hold sample batches as received from NATS: a header line
// (SamplesMagic), then one record per message: the length of the
// message (uint32, big endian), when it was received (int64 Unix
// nanoseconds, big endian), and the message, a batch in its wire
// encoding (wire.EncodeBatch).
const SamplesMagic = "mciv-samples v1\n"

// maxRecord bounds one record so that a corrupt length cannot make the
// reader allocate without bound.
const maxRecord = 64 << 20

// Recorder writes a samples file. It is not safe for concurrent use.
type Recorder struct {
	w       *bufio.Writer
	started bool
	n       int
}

// NewRecorder returns a recorder that writes to w. Call Flush at the end.
func NewRecorder(w io.Writer) *Recorder { return &Recorder{w: bufio.NewWriter(w)} }

// Record appends one message received at t.
func (r *Recorder) Record(t time.Time, msg []byte) error {
	if !r.started {
		if _, err := r.w.WriteString(SamplesMagic); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		r.started = true
	}
	if len(msg) > maxRecord {
		return fmt.Errorf("record: message of %d bytes is larger than %d", len(msg), maxRecord)
	}
	var hdr [12]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(msg)))
	binary.BigEndian.PutUint64(hdr[4:], uint64(t.UnixNano()))
	if _, err := r.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if _, err := r.w.Write(msg); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	r.n++
	return nil
}

// Count is the number of messages recorded.
func (r *Recorder) Count() int { return r.n }

// Flush writes what is buffered (and the header of an empty file).
func (r *Recorder) Flush() error {
	if !r.started {
		if _, err := r.w.WriteString(SamplesMagic); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		r.started = true
	}
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// ReadSamples calls fn with every message of a samples file, in order.
func ReadSamples(in io.Reader, fn func(received time.Time, msg []byte) error) error {
	br := bufio.NewReaderSize(in, 1<<16)
	magic := make([]byte, len(SamplesMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != SamplesMagic {
		return fmt.Errorf("replay: not an mciv samples file (written by mciv record)")
	}
	var (
		hdr [12]byte
		buf []byte
	)
	for i := 1; ; i++ {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("replay: samples record %d: truncated header: %w", i, err)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > maxRecord {
			return fmt.Errorf("replay: samples record %d: length %d is larger than %d", i, n, maxRecord)
		}
		t := time.Unix(0, int64(binary.BigEndian.Uint64(hdr[4:]))).UTC()
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("replay: samples record %d: truncated message: %w", i, err)
		}
		if err := fn(t, buf); err != nil {
			return err
		}
	}
}

// SamplesSummary counts what a samples replay did.
type SamplesSummary struct {
	Batches   int            // batches evaluated
	Ignored   map[string]int // batches not evaluated, by reason (duplicate, out_of_order, decode, invalid)
	Alerts    int            // alert announcements written
	Errors    int            // rule evaluation errors
	FirstTime time.Time      // receive time of the first message
	LastTime  time.Time      // receive time of the last message
}

// Samples replays a samples file through the full rules engine, as the
// analyzer would have evaluated it live (the receive time stamps each
// alert's `at`), and writes every alert announcement (firing, resolved)
// to out as one JSON line: {"transition":"firing","rule":...,"ts":<unix
// seconds of the change>,"alert":{...the wire alert...}}.
func Samples(in io.Reader, set *rules.Set, out io.Writer) (SamplesSummary, error) {
	sum := SamplesSummary{Ignored: map[string]int{}}
	eng := eval.New(set, eval.Options{})
	w := bufio.NewWriterSize(out, 1<<16)
	enc := json.NewEncoder(w)
	type line struct {
		Transition string      `json:"transition"`
		Rule       string      `json:"rule"`
		TS         json.Number `json:"ts"`
		Alert      *wire.Alert `json:"alert"`
	}
	err := ReadSamples(in, func(received time.Time, msg []byte) error {
		if sum.FirstTime.IsZero() {
			sum.FirstTime = received
		}
		sum.LastTime = received
		b, err := wire.DecodeBatch(msg)
		if err != nil {
			sum.Ignored["decode"]++
			return nil
		}
		rep, err := eng.Eval(b, received)
		if err != nil {
			sum.Ignored["invalid"]++
			return nil
		}
		if rep.Ignored != "" {
			sum.Ignored[rep.Ignored]++
			return nil
		}
		sum.Batches++
		sum.Errors += len(rep.Errors)
		for _, al := range rep.Alerts {
			ts := al.StartsAt
			if al.State == wire.StateResolved {
				ts = al.EndsAt
			}
			if err := enc.Encode(line{Transition: string(al.State), Rule: al.Rule, TS: json.Number(string(appendTime(nil, ts))), Alert: al}); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			sum.Alerts++
		}
		return nil
	})
	if ferr := w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("replay: %w", ferr)
	}
	return sum, err
}

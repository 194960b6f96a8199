package wire

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func sampleBatch() *Batch {
	return &Batch{
		Cluster: "payments", Host: "db-1", Seq: 42,
		Start:    time.Unix(1700000000, 123).UTC(),
		Interval: time.Second,
		Series: []Series{
			{Signal: "tcp_retransmits_total", Kind: KindCounter, Value: 17,
				Labels: []Label{{"local_port", "5432"}, {"peer", "10.0.0.2:40000"}}},
			{Signal: "load", Kind: KindGauge, Value: math.Inf(1)},
			{Signal: "db_query_seconds", Kind: KindHistogram,
				Labels: []Label{{"instance", "postgres:5432"}},
				Hist:   &Histogram{Count: 3, Sum: 0.15, Buckets: []Bucket{{-700, 1}, {-300, 2}, {12, 0}}}},
		},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	in := sampleBatch()
	out, err := DecodeBatch(EncodeBatch(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	good := EncodeBatch(sampleBatch())
	badVersion := append([]byte{}, good...)
	badVersion[2] = 99
	bad := map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("hello, world"),
		"version":    badVersion,
		"truncated":  good[:len(good)-3],
		"trailing":   append(append([]byte{}, good...), 0),
		"huge count": {'M', 'B', Version, 1, 'a', 1, 'b', 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad host":   EncodeBatch(&Batch{Cluster: "c", Host: "a.b"}),
	}
	for name, data := range bad {
		if _, err := DecodeBatch(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch(sampleBatch()))
	f.Add([]byte("MB\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes.
		again := EncodeBatch(b)
		b2, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if len(b2.Series) != len(b.Series) {
			t.Fatalf("series count changed %d -> %d", len(b.Series), len(b2.Series))
		}
	})
}

func TestAlertRoundTrip(t *testing.T) {
	a := &Alert{Fingerprint: "abc", Rule: "R", State: StateFiring, Labels: map[string]string{"host": "h"},
		StartsAt: time.Unix(10, 0).UTC(), At: time.Unix(11, 0).UTC()}
	data, err := EncodeAlert(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAlert(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rule != "R" || got.V != Version || got.MsgID() != a.MsgID() {
		t.Fatalf("got %+v", got)
	}
	if _, err := DecodeAlert([]byte(`{"v":1,"rule":"R","fingerprint":"f","state":"bogus"}`)); err == nil {
		t.Fatal("bogus state decoded")
	}
	if _, err := DecodeAlert([]byte(`{"v":2,"rule":"R","fingerprint":"f","state":"firing"}`)); err == nil {
		t.Fatal("future version decoded")
	}
}

func TestEventRoundTrip(t *testing.T) {
	data, err := EncodeEvent(&Event{Cluster: "c", Host: "h", Kind: "tcp_retransmit", Labels: map[string]string{"peer": "1.2.3.4:5"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEvent(data)
	if err != nil || e.Kind != "tcp_retransmit" || e.Labels["peer"] != "1.2.3.4:5" {
		t.Fatalf("got %+v %v", e, err)
	}
	if _, err := DecodeEvent([]byte("{}")); err == nil {
		t.Fatal("empty event decoded")
	}
}

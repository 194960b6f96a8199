package wire

import (
	"testing"
	"time"
)

// Fuzz targets of every decoder of outside input on the bus: each must
// return an error, never panic, and what decodes re-encodes.

func FuzzDecode(f *testing.F) {
	b := EncodeBatch(&Batch{Cluster: "c", Host: "h", Seq: 1, Start: time.Unix(1, 0), Interval: time.Second,
		Series: []Series{{Signal: "s", Kind: KindCounter, Value: 1, Labels: []Label{{Name: "a", Value: "b"}}},
			{Signal: "q", Kind: KindHistogram, Hist: &Histogram{Count: 2, Sum: 1, Buckets: []Bucket{{Index: 3, Count: 2}}}}}})
	f.Add("mciv.samples.c.h", b)
	f.Add("mciv.events.c.h", []byte(`{"v":1,"kind":"tcp_reset","cluster":"c","host":"h"}`))
	f.Add("mciv.alerts.c.R", []byte(`{"v":1,"rule":"R","state":"firing","labels":{"cluster":"c"},"fingerprint":"f"}`))
	f.Add("mciv.acks.c", []byte(`{"v":1,"fingerprint":"f","cluster":"c","action":"approve","by":"U1","id":"x","nonce":"n"}`))
	f.Add("mciv.actions.c", []byte(`{"v":1,"id":"i","cluster":"c","decision":"acted","reason":"r"}`))
	f.Add("mciv.samples", []byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		_, _ = Decode(subject, data)
		_, _, _, _ = ParseHostSubject(subject)
		if a, err := DecodeAck(data); err == nil {
			if _, err := EncodeAck(a); err != nil {
				t.Fatalf("decoded ack does not encode: %v", err)
			}
		}
		if a, err := DecodeAction(data); err == nil {
			if _, err := EncodeAction(a); err != nil {
				t.Fatalf("decoded action does not encode: %v", err)
			}
		}
		_, _ = DecodeAlert(data)
		_, _ = DecodeEvent(data)
		if bt, err := DecodeBatch(data); err == nil {
			if _, err := DecodeBatch(EncodeBatch(bt)); err != nil {
				t.Fatalf("a decoded batch does not round-trip: %v", err)
			}
		}
	})
}

package wire

import "testing"

func TestDecodeBySubject(t *testing.T) {
	b := EncodeBatch(sampleBatch())
	if v, err := Decode(SamplesSubject("c", "h"), b); err != nil {
		t.Fatal(err)
	} else if _, ok := v.(*Batch); !ok {
		t.Fatalf("samples decoded to %T", v)
	}
	ev, _ := EncodeEvent(&Event{Kind: "k"})
	if v, err := Decode(EventsSubject("c", "h"), ev); err != nil {
		t.Fatal(err)
	} else if _, ok := v.(*Event); !ok {
		t.Fatalf("event decoded to %T", v)
	}
	if _, err := Decode(AlertSubject("c", "r"), b); err == nil {
		t.Fatal("a batch decoded as an alert")
	}
	if _, err := Decode("other.subject", b); err == nil {
		t.Fatal("foreign subject decoded")
	}
}

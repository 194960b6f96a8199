package actuator

import (
	"testing"
	"time"
)

func TestRealClock(t *testing.T) {
	var c Clock = realClock{}
	before := time.Now()
	if c.Now().Before(before) {
		t.Fatal("real clock went backwards")
	}
	if _, ok := <-c.After(0); !ok {
		t.Fatal("After(0) closed")
	}
}

func TestFakeClock(t *testing.T) {
	c := newFakeClock()
	ch := c.After(time.Minute)
	c.Advance(59 * time.Second)
	select {
	case <-ch:
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Second)
	<-ch
}

package detect

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mciv/mciv/detect/synth"
)

func TestZZ(t *testing.T) {
	seed, _ := strconv.Atoi(os.Getenv("ZSEED"))
	if seed == 0 {
		t.Skip()
	}
	at, _ := strconv.Atoi(os.Getenv("ZAT"))
	s := synth.Generate(uint64(seed), 5*time.Minute, 0)
	d := mustSpec(t, Default("auto")).New().(*Auto)
	per := int64(0)
	for i, v := range s.Values {
		r := d.Observe(s.Time(i), v)
		if d.period != per {
			per = d.period
			fmt.Printf("row %d period %v b %d\n", i, time.Duration(per), d.per.b)
		}
		if i >= at-3 && i <= at+5 {
			fmt.Printf("%d v %.4g base %.4g sd %.3g score %.6f kind %q firing %v\n", i, v, r.Baseline, (r.Threshold-r.Baseline)/d.limZ, r.Score, r.Kind, r.Firing)
		}
	}
	fmt.Println(s.Anomalies)
}

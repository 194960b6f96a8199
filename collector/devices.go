package collector

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// deviceNames names block devices from sysfs, caching each answer.
type deviceNames struct {
	sysfs string // "/sys" outside tests

	mu    sync.Mutex
	cache map[uint32]string
}

// name returns the device name of a kernel dev_t (major << 20 | minor),
// e.g. "vda", or "MAJ:MIN" if sysfs does not know it.
func (d *deviceNames) name(dev uint32) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.cache[dev]; ok {
		return n
	}
	if d.cache == nil {
		d.cache = make(map[uint32]string)
	}
	major, minor := dev>>20, dev&(1<<20-1)
	n := fmt.Sprintf("%d:%d", major, minor)
	if name, err := devName(filepath.Join(d.sysfs, "dev", "block", n, "uevent")); err == nil && name != "" {
		n = name
	}
	d.cache[dev] = n
	return n
}

// devName reads DEVNAME from a sysfs uevent file.
func devName(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "DEVNAME="); ok {
			return v, nil
		}
	}
	return "", sc.Err()
}

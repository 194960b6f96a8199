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
// e.g. "vda", or "MAJ:MIN" if sysfs does not know it. A partition (which
// the classic block tracepoints report) is named by its disk, as the
// tp_btf programs report it: one series per disk whatever the hooks.
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
	dir := filepath.Join(d.sysfs, "dev", "block", n)
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		// /sys/dev/block/MAJ:MIN links to .../<disk>/<partition>.
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = filepath.Dir(real)
		}
	}
	if name, err := devName(filepath.Join(dir, "uevent")); err == nil && name != "" {
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

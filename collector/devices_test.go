package collector

import "testing"

func TestDeviceNames(t *testing.T) {
	dir := t.TempDir()
	d := &deviceNames{sysfs: dir}
	if n := d.name(8<<20 | 1); n != "8:1" {
		t.Errorf("unknown device named %q", n)
	}
	writeFile(t, dir+"/dev/block/253:0/uevent", "MAJOR=253\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
	if n := d.name(253 << 20); n != "vda" {
		t.Errorf("named %q", n)
	}
}

package collector

import (
	"os"
	"testing"
)

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

// TestDeviceNamesPartition names a partition by its disk, through the
// /sys/dev/block link the kernel makes.
func TestDeviceNamesPartition(t *testing.T) {
	dir := t.TempDir()
	disk := dir + "/devices/pci0000:00/virtio1/block/vda"
	writeFile(t, disk+"/uevent", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
	writeFile(t, disk+"/vda1/uevent", "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\n")
	writeFile(t, disk+"/vda1/partition", "1\n")
	if err := os.MkdirAll(dir+"/dev/block", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(disk+"/vda1", dir+"/dev/block/254:1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(disk, dir+"/dev/block/254:0"); err != nil {
		t.Fatal(err)
	}
	d := &deviceNames{sysfs: dir}
	if n := d.name(254<<20 | 1); n != "vda" {
		t.Errorf("partition 254:1 named %q, want its disk vda", n)
	}
	if n := d.name(254 << 20); n != "vda" {
		t.Errorf("disk 254:0 named %q", n)
	}
}

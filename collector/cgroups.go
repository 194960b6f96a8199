package collector

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cgroupHierarchy says which cgroup file system an id the kernel reports
// belongs to: ids are inode numbers, unique only within one hierarchy.
type cgroupHierarchy int

const (
	// cgroupSockets is the hierarchy of sockets' cgroups: cgroup v2.
	cgroupSockets cgroupHierarchy = iota
	// cgroupIO is the io controller's: cgroup v2 when it hosts the
	// controller, else (a hybrid host) cgroup v1's blkio.
	cgroupIO
)

// cgroupRewalk bounds how often an unknown id makes cgroupNames walk a
// hierarchy again.
const cgroupRewalk = 10 * time.Second

// cgroupNames names the cgroup ids the kernel keys TCP and disk samples
// by: a socket's cgroup is the one it was created in (an accepted socket's,
// its listener's), an I/O's the cgroup it is charged to. The name is the
// cgroup's path from its hierarchy's root, as /proc/PID/cgroup shows it;
// the root and unknown ids have none. Safe for concurrent use.
type cgroupNames struct {
	roots [2]string // mount point per cgroupHierarchy, "" if none

	mu     sync.Mutex
	paths  [2]map[uint64]string
	walked [2]time.Time
	now    func() time.Time
}

// newCgroupNames finds the cgroup mounts in mountinfo (/proc/self/mountinfo).
func newCgroupNames(mountinfo string) *cgroupNames {
	c := &cgroupNames{now: time.Now}
	f, err := os.Open(mountinfo)
	if err != nil {
		return c
	}
	defer f.Close()
	var v2, blkio string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+3 >= len(fields) || fields[3] != "/" {
			continue
		}
		switch fsType, super := fields[sep+1], fields[sep+3]; {
		case fsType == "cgroup2" && v2 == "":
			v2 = fields[4]
		case fsType == "cgroup" && blkio == "" && slices.Contains(strings.Split(super, ","), "blkio"):
			blkio = fields[4]
		}
	}
	c.roots[cgroupSockets] = v2
	c.roots[cgroupIO] = blkio
	if v2 != "" {
		if b, err := os.ReadFile(filepath.Join(v2, "cgroup.controllers")); err == nil && slices.Contains(strings.Fields(string(b)), "io") {
			c.roots[cgroupIO] = v2
		}
	}
	return c
}

// name returns the path of cgroup id in hierarchy h, "" for the root, for
// 0 and for an id it cannot find.
func (c *cgroupNames) name(h cgroupHierarchy, id uint64) string {
	if c == nil || id == 0 {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.paths[h][id]; ok {
		return p
	}
	if now := c.now(); c.roots[h] != "" && now.Sub(c.walked[h]) >= cgroupRewalk {
		c.walked[h] = now
		c.paths[h] = walkCgroups(c.roots[h])
	}
	return c.paths[h][id]
}

// walkCgroups maps the id (directory inode) of every cgroup under root to
// its path from root; the root itself maps to "".
func walkCgroups(root string) map[uint64]string {
	paths := make(map[uint64]string)
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed while walking, or a file
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel := strings.TrimPrefix(path, root)
		if rel != "" && !strings.HasPrefix(rel, "/") {
			rel = "/" + rel
		}
		paths[st.Ino] = rel
		return nil
	})
	return paths
}

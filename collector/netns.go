package collector

import (
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/bpf"
)

// selfNetNS is the collector's own network namespace.
const selfNetNS = "/proc/self/ns/net"

// netnsInode returns the inode number of the network namespace at path
// (/proc/PID/ns/net, or a bind mount of one such as /var/run/netns/NAME):
// the number the kernel names the namespace by (ns.inum).
func netnsInode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Ino == 0 || st.Ino > 0xffffffff {
		return 0, fmt.Errorf("%s: inode %d is not a namespace inode", path, st.Ino)
	}
	if path != selfNetNS {
		// Make sure it is a network namespace, not any file.
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", path, err)
		}
		defer unix.Close(fd)
		typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
		if err != nil {
			return 0, fmt.Errorf("%s is not a namespace: %w", path, err)
		}
		if typ != unix.CLONE_NEWNET {
			return 0, fmt.Errorf("%s is not a network namespace", path)
		}
	}
	return uint32(st.Ino), nil
}

// netnsLabel returns the value of the netns label of a signal from the
// network namespace ns, and false when the label is omitted: ns is the
// host's (hostNS) or unknown (0).
func netnsLabel(ns, hostNS uint32) (string, bool) {
	if ns == 0 || ns == hostNS {
		return "", false
	}
	return strconv.FormatUint(uint64(ns), 10), true
}

// filterNetNS makes the TCP object of objs observe only the network
// namespace of inode ns: the probes' filter_netns constant, set before the
// object is loaded.
func filterNetNS(objs []object, ns uint32) []object {
	out := make([]object, len(objs))
	copy(out, objs)
	for i := range out {
		if out[i].name != "tcp" {
			continue
		}
		load := out[i].load
		out[i].load = func() (*ebpf.CollectionSpec, error) {
			spec, err := load()
			if err != nil {
				return nil, err
			}
			v, ok := spec.Variables[bpf.TCPVarFilterNetns]
			if !ok {
				return nil, fmt.Errorf("no %s in the TCP object", bpf.TCPVarFilterNetns)
			}
			if err := v.Set(ns); err != nil {
				return nil, fmt.Errorf("set %s: %w", bpf.TCPVarFilterNetns, err)
			}
			return spec, nil
		}
	}
	return out
}

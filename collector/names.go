package collector

import (
	"fmt"
	"sync"
)

// names is the collector's labelNamer.
type names struct {
	devices   *deviceNames
	instances *instanceNames
}

func (n names) device(dev uint32) string  { return n.devices.name(dev) }
func (n names) instance(id uint32) string { return n.instances.name(id) }

// instanceNames maps the instance ids the kernel keys database samples by
// (the postmaster's pid for PostgreSQL) to instance labels such as
// "postgres:5432". Safe for concurrent use.
type instanceNames struct {
	mu    sync.Mutex
	names map[uint32]string
}

// set names the instance id.
func (in *instanceNames) set(id uint32, name string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.names == nil {
		in.names = make(map[uint32]string)
	}
	in.names[id] = name
}

// name returns the label of instance id, or "pid:<id>" if unknown.
func (in *instanceNames) name(id uint32) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if n, ok := in.names[id]; ok {
		return n
	}
	return fmt.Sprintf("pid:%d", id)
}

package collector

import (
	"debug/elf"
	"errors"
	"fmt"
	"strings"
)

// usdtProbe is one USDT probe point of a binary, read from its
// .note.stapsdt section (the layout systemtap's sys/sdt.h writes).
type usdtProbe struct {
	Provider, Name string
	// Location and Semaphore are virtual addresses, adjusted for
	// prelinking through .stapsdt.base; Semaphore is 0 if none.
	Location, Semaphore uint64
	// LocationOffset and SemaphoreOffset are the file offsets the uprobe
	// API wants.
	LocationOffset, SemaphoreOffset uint64
	// Args is the argument spec, e.g. "8@%rbx -4@$1".
	Args string
}

// stapsdtNoteType is NT_STAPSDT.
const stapsdtNoteType = 3

// readUSDTProbes returns every USDT probe point of the ELF file at path.
func readUSDTProbes(path string) ([]usdtProbe, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read USDT probes: %w", err)
	}
	defer f.Close()
	ps, err := usdtProbesOf(f)
	if err != nil {
		return nil, fmt.Errorf("read USDT probes of %s: %w", path, err)
	}
	return ps, nil
}

// usdtProbesOf parses the .note.stapsdt section of f.
func usdtProbesOf(f *elf.File) ([]usdtProbe, error) {
	sec := f.Section(".note.stapsdt")
	if sec == nil {
		return nil, errors.New("no .note.stapsdt section: built without USDT probes")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	var baseAddr uint64
	hasBase := false
	if b := f.Section(".stapsdt.base"); b != nil {
		baseAddr, hasBase = b.Addr, true
	}
	addrSize := 8
	if f.Class == elf.ELFCLASS32 {
		addrSize = 4
	}
	bo := f.ByteOrder
	readAddr := func(b []byte) uint64 {
		if addrSize == 4 {
			return uint64(bo.Uint32(b))
		}
		return bo.Uint64(b)
	}
	var out []usdtProbe
	for len(data) >= 12 {
		namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		data = data[12:]
		nameEnd, descEnd := align4(namesz), align4(descsz)
		if uint64(len(data)) < uint64(nameEnd)+uint64(descEnd) {
			return nil, errors.New("truncated note")
		}
		name := strings.TrimRight(string(data[:namesz]), "\x00")
		desc := data[nameEnd : nameEnd+descsz]
		data = data[nameEnd+descEnd:]
		if name != "stapsdt" || typ != stapsdtNoteType {
			continue
		}
		if len(desc) < 3*addrSize {
			return nil, errors.New("short stapsdt note")
		}
		p := usdtProbe{
			Location:  readAddr(desc),
			Semaphore: readAddr(desc[2*addrSize:]),
		}
		noteBase := readAddr(desc[addrSize:])
		strs := strings.SplitN(string(desc[3*addrSize:]), "\x00", 4)
		if len(strs) < 3 {
			return nil, errors.New("stapsdt note without provider, name and arguments")
		}
		p.Provider, p.Name, p.Args = strs[0], strs[1], strs[2]
		if hasBase {
			// The binary was prelinked (moved) after the notes were
			// written: move the addresses with it.
			p.Location += baseAddr - noteBase
			if p.Semaphore != 0 {
				p.Semaphore += baseAddr - noteBase
			}
		}
		if p.LocationOffset, err = fileOffset(f, p.Location); err != nil {
			return nil, fmt.Errorf("probe %s:%s: %w", p.Provider, p.Name, err)
		}
		if p.Semaphore != 0 {
			if p.SemaphoreOffset, err = fileOffset(f, p.Semaphore); err != nil {
				return nil, fmt.Errorf("probe %s:%s semaphore: %w", p.Provider, p.Name, err)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func align4(n uint32) uint32 { return (n + 3) &^ 3 }

// fileOffset converts a virtual address into an offset in the file,
// through the loadable segment that maps it.
func fileOffset(f *elf.File, addr uint64) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr < p.Vaddr+p.Memsz {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x in no loadable segment", addr)
}

package collector

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// argNone is the cookie of a probe program whose argument is not read.
const argNone = 0xff

// argCookie turns one USDT argument spec ("8@%rbx", "8@-144(%rbp)",
// "8@x0") into the attach cookie that pg.bpf.c's read_arg decodes: the
// pt_regs slot in bits 0-7, dereference in bit 8, the displacement in bits
// 32-63. Only 8-byte (pointer) arguments are supported.
func argCookie(spec, goarch string) (uint64, error) {
	size, loc, ok := strings.Cut(spec, "@")
	if !ok {
		return 0, fmt.Errorf("argument %q: no size@location", spec)
	}
	if size != "8" && size != "-8" {
		return 0, fmt.Errorf("argument %q: size %s, want a pointer (8)", spec, size)
	}
	var (
		disp  int64
		deref bool
	)
	if i := strings.IndexByte(loc, '('); i >= 0 && strings.HasSuffix(loc, ")") {
		if i > 0 {
			d, err := strconv.ParseInt(loc[:i], 10, 32)
			if err != nil {
				return 0, fmt.Errorf("argument %q: displacement: %w", spec, err)
			}
			disp = d
		}
		loc, deref = loc[i+1:len(loc)-1], true
	} else if i := strings.IndexByte(loc, '['); i >= 0 && strings.HasSuffix(loc, "]") {
		// arm64: [x1, 8]
		inner := loc[i+1 : len(loc)-1]
		reg, off, _ := strings.Cut(inner, ",")
		if off = strings.TrimSpace(off); off != "" {
			d, err := strconv.ParseInt(off, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("argument %q: displacement: %w", spec, err)
			}
			disp = d
		}
		loc, deref = strings.TrimSpace(reg), true
	}
	slot, err := regSlot(strings.TrimPrefix(loc, "%"), goarch)
	if err != nil {
		return 0, fmt.Errorf("argument %q: %w", spec, err)
	}
	c := uint64(slot) | uint64(uint32(int32(disp)))<<32
	if deref {
		c |= 0x100
	}
	return c, nil
}

// x86-64 struct pt_regs, in 8-byte slots (arch/x86/include/asm/ptrace.h),
// with the 64-bit and 32-bit names of each register.
var amd64Slots = map[string]int{
	"r15": 0, "r14": 1, "r13": 2, "r12": 3, "rbp": 4, "rbx": 5, "r11": 6, "r10": 7,
	"r9": 8, "r8": 9, "rax": 10, "rcx": 11, "rdx": 12, "rsi": 13, "rdi": 14, "rip": 16, "rsp": 19,
	"r15d": 0, "r14d": 1, "r13d": 2, "r12d": 3, "ebp": 4, "ebx": 5, "r11d": 6, "r10d": 7,
	"r9d": 8, "r8d": 9, "eax": 10, "ecx": 11, "edx": 12, "esi": 13, "edi": 14, "esp": 19,
}

// regSlot returns the pt_regs slot of a register named as in a USDT
// argument spec.
func regSlot(reg, goarch string) (int, error) {
	switch goarch {
	case "amd64":
		if s, ok := amd64Slots[reg]; ok {
			return s, nil
		}
	case "arm64":
		// struct user_pt_regs: regs[31], sp, pc.
		if reg == "sp" {
			return 31, nil
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(reg, "x")); err == nil && strings.HasPrefix(reg, "x") && n >= 0 && n <= 30 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("register %q not supported on %s", reg, goarch)
}

// hostArgCookie is argCookie for this machine's architecture.
func hostArgCookie(spec string) (uint64, error) { return argCookie(spec, runtime.GOARCH) }

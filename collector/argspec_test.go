package collector

import "testing"

func TestArgCookie(t *testing.T) {
	cases := []struct {
		spec, arch string
		want       uint64
		err        bool
	}{
		{"8@%rbx", "amd64", 5, false},
		{"8@%rdi", "amd64", 14, false},
		{"8@-144(%rbp)", "amd64", 4 | 0x100 | uint64(uint32(0xffffff70))<<32, false},
		{"8@16(%rax)", "amd64", 10 | 0x100 | 16<<32, false},
		{"8@x1", "arm64", 1, false},
		{"8@[sp, 16]", "arm64", 31 | 0x100 | 16<<32, false},
		{"-4@$1", "amd64", 0, true},
		{"8@%xmm0", "amd64", 0, true},
		{"nonsense", "amd64", 0, true},
	}
	for _, c := range cases {
		got, err := argCookie(c.spec, c.arch)
		if (err != nil) != c.err || !c.err && got != c.want {
			t.Errorf("argCookie(%q, %s) = %#x, %v; want %#x (error %v)", c.spec, c.arch, got, err, c.want, c.err)
		}
	}
}

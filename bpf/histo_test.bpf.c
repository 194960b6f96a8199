//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * histo_test.bpf.c: a test-only program that exposes histo_index (from
 * headers/mciv_histo.h) to BPF_PROG_TEST_RUN, so that bpf/histo_test.go can
 * compare the kernel's bucketing with histo.Index value by value. It is
 * never attached.
 */

#include "mciv_types.h"
#include <bpf/bpf_helpers.h>
#include "mciv_histo.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The raw tracepoint context is an array of u64 arguments: args[0] is the
 * value, the return value its bucket. */
SEC("raw_tp")
int histo_index_of(__u64 *ctx)
{
	return (int)histo_index(ctx[0]);
}

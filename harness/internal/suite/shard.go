package suite

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"oomlab/harness/internal/results"
)

// Shard is the part of a plan one machine runs: shard Index of Count
// (1-based). The zero Shard is the whole plan.
//
// The unit of a shard is one guest run (scenario x variant x repeat): the
// rounds of a scenario share one boot, its setup and whatever earlier
// rounds left in the guest, so they cannot go to different machines.
type Shard struct {
	Index, Count int
}

// MaxShards bounds n in --shard i/n (as --repeat is bounded): more shards
// than that is a typo, not a plan.
const MaxShards = 10000

// ParseShard reads "i/n".
func ParseShard(s string) (Shard, error) {
	is, ns, ok := strings.Cut(s, "/")
	i, erri := strconv.Atoi(is)
	n, errn := strconv.Atoi(ns)
	if !ok || erri != nil || errn != nil || n < 1 || n > MaxShards || i < 1 || i > n {
		return Shard{}, fmt.Errorf("--shard %q: want i/n with 1 <= i <= n <= %d (e.g. --shard 2/4: the second of four shards)", s, MaxShards)
	}
	return Shard{i, n}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// sharded says whether s is a part of the plan rather than all of it.
func (s Shard) sharded() bool { return s.Count > 0 }

// assign gives each guest run its shard (1..n): the longest first, each
// to the shard with the least estimated wall time so far (ties: the
// lower shard), the estimate being nominal (boot, rounds x duration,
// settles). It depends only on the plan, so every machine given the same
// scenarios and flags computes the same assignment: the shards are
// disjoint and their union is the plan. A plan whose guest runs all cost
// the same is dealt out round robin in plan order.
func assign(gs []guestRun, n int) []int {
	out := make([]int, len(gs))
	if n <= 1 {
		for k := range out {
			out[k] = 1
		}
		return out
	}
	order := make([]int, len(gs))
	for k := range order {
		order[k] = k
	}
	cost := func(k int) time.Duration { return nominal(gs[k].sc) }
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(cost(b), cost(a)) })
	load := make([]time.Duration, n)
	for _, k := range order {
		best := 0
		for s := 1; s < n; s++ {
			if load[s] < load[best] {
				best = s
			}
		}
		load[best] += cost(k)
		out[k] = best + 1
	}
	return out
}

// all is every guest run of the plan, whatever its shard, with the shard
// of each (1 when the plan is not sharded).
func (p Plan) all() ([]guestRun, []int) {
	gs := p.allGuests()
	return gs, assign(gs, p.Shard.Count)
}

// Units are the plan's guest runs, with their shards, in the order an
// unsharded run runs them.
func (p Plan) Units() []results.Unit {
	gs, sh := p.all()
	out := make([]results.Unit, len(gs))
	for k, g := range gs {
		out[k] = results.Unit{Scenario: g.sc.Name, Variant: g.variant, Repeat: g.repeat, Shard: sh[k]}
	}
	return out
}

// ShardVariants are the variants the plan's shard runs, in plan order:
// the kernels it needs (a shard builds no kernel that only others boot).
func (p Plan) ShardVariants() []string {
	need := map[string]bool{}
	for _, g := range p.guests() {
		need[g.variant] = true
	}
	var out []string
	for _, v := range p.Variants {
		if need[v] {
			out = append(out, v)
		}
	}
	return out
}

// ShardRecord is what run.json says of the shard: nil for a whole plan.
func (p Plan) ShardRecord() *results.Shard {
	if !p.Shard.sharded() {
		return nil
	}
	units := p.Units()
	return &results.Shard{Index: p.Shard.Index, Count: p.Shard.Count, Units: units,
		UnitsHash: results.UnitsHash(units, p.Variants), Variants: slices.Clone(p.Variants)}
}

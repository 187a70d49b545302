package selftests

import (
	"context"
	"slices"
	"strings"

	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/scenario"
)

// RunGuest is suite.Plan's RunGuest: one guest run.
type RunGuest func(ctx context.Context, env scenario.Env, sc *scenario.Scenario, variant string, repeat int) *results.Result

// program is the selftest a stressor runs, or nil: its command's first
// word names a Spec.
func program(st scenario.Stressor) *Spec {
	f := strings.Fields(st.Command)
	if len(f) == 0 {
		return nil
	}
	return Lookup(f[0])
}

// Used lists the selftest programs the scenarios run, in Specs order.
func Used(scs []*scenario.Scenario) []string {
	seen := map[string]bool{}
	for _, sc := range scs {
		for _, st := range sc.Stressors {
			if p := program(st); p != nil {
				seen[p.Name] = true
			}
		}
	}
	var out []string
	for _, s := range Specs {
		if seen[s.Name] {
			out = append(out, s.Name)
		}
	}
	return out
}

// Wrap makes the guest runs of next carry each variant's own selftests:
// the initramfs is assembled per boot from env.Stressors, so a variant's
// programs are added there for its guests only (baseline's guest gets what
// was built from the pristine tree, a patched one what was built from its
// patched tree). A program that could not be built for the variant's tree
// runs as the agent's echo builtin printing the KTAP of a program that
// skipped itself ("1..0 # SKIP not built from ...: <reason>"), so the run
// records a skip with its reason, never a pass, and the scenario needs no
// variant-specific file. Scenarios without selftests are passed through.
func Wrap(sets map[string]*Set, next RunGuest) RunGuest {
	if next == nil {
		next = scenario.Run
	}
	return func(ctx context.Context, env scenario.Env, sc *scenario.Scenario, variant string, repeat int) *results.Result {
		set := sets[variant]
		uses := false
		for _, st := range sc.Stressors {
			uses = uses || program(st) != nil
		}
		if !uses {
			return next(ctx, env, sc, variant, repeat)
		}
		c := *sc
		c.Stressors = slices.Clone(sc.Stressors)
		env.Stressors = slices.Clone(env.Stressors)
		for i, st := range c.Stressors {
			p := program(st)
			if p == nil {
				continue
			}
			bin := ""
			reason := "no selftests were built for the " + variant + " kernel"
			if set != nil {
				bin = set.Binary(p.Name)
				reason = set.Skipped[p.Name]
			}
			if bin == "" {
				c.Stressors[i].Command = protocol.JoinWords("echo", "1..0 # SKIP not built from the "+variant+" tree: "+reason)
				continue
			}
			if !slices.Contains(env.Stressors, bin) {
				env.Stressors = append(env.Stressors, bin)
			}
		}
		return next(ctx, env, &c, variant, repeat)
	}
}

package metrics

// Statistics over the repeats of a scenario x variant, and the comparison
// of two such groups with a test and a verdict.
//
// Distributions (latencies, the table rows with Samples) are pooled over
// every run of a group: N, p50/p95/p99 with 95% percentile-bootstrap
// confidence intervals. Two groups are compared with the Mann-Whitney U
// test and the ratio of their medians (bootstrap CI). Rates of bad runs
// (a run with a lockup, a dead guest, ...; the table rows with Better and
// Limit, the family figures whose name says "hung", and failed runs) are
// compared with Fisher's exact test. Every random draw is seeded from the
// figure's name, so rendering the same run twice gives the same numbers.

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Alpha is the significance level of every test.
const Alpha = 0.05

// Resamples is the number of bootstrap resamples.
const Resamples = 2000

// Minimum samples: a p95 (and any test verdict) needs MinSamples, a p99
// needs MinSamplesP99.
const (
	MinSamples    = 5
	MinSamplesP99 = 20
)

// TooFew is what the summaries say instead of a figure they cannot give.
const TooFew = "too few samples"

// Verdict of a comparison of a variant with the reference.
type Verdict string

// Verdicts.
const (
	Better       Verdict = "better"
	Worse        Verdict = "worse"
	NoDifference Verdict = "no difference"
	TooFewVerd   Verdict = TooFew
)

// Dist is a pooled distribution of samples.
type Dist struct {
	Unit   string    `json:"unit"`
	Better Direction `json:"better"`
	Values []float64 `json:"values"`
}

// Rate counts bad runs (Events) among the runs where the figure is defined
// (Trials). A higher rate is always worse.
type Rate struct {
	Events int `json:"events"`
	Trials int `json:"trials"`
}

// Samples is what a group (the runs of one scenario x variant) contributes
// to the statistics.
type Samples struct {
	Runs  int             `json:"runs"`
	Dists map[string]Dist `json:"distributions"` // by distribution name (the figure's Field: "oom_to_freed_ms")
	Rates map[string]Rate `json:"rates"`         // by rate name ("lockups > 0", "guest_alive == false", "failed_runs")
}

// FailedRuns is the rate of runs whose verdict is fail or error; the
// caller that knows the verdicts adds it (AddRate).
const FailedRuns = "failed_runs"

// RateName is the name of the rate of bad runs of a table row.
func (fig *Figure) RateName() string {
	switch {
	case fig.Better == Higher && fig.Unit == Bool:
		return fig.Name + " == false"
	case fig.Better == Higher:
		return fig.Name + " < " + fig.Format(fig.Limit)
	}
	return fig.Name + " > " + fig.Format(fig.Limit)
}

func (fig *Figure) bad(v float64) bool {
	if fig.Better == Higher {
		return v < fig.Limit
	}
	return v > fig.Limit
}

// HungFigure says whether a family figure counts hung tasks (its name
// says "hung": "probe:hung_waiters"); more than 0 is a bad run.
func HungFigure(name string) bool {
	fam, member := FamilyOf(name)
	return fam != nil && strings.Contains(member, "hung")
}

// Collect pools the figures of the runs of one group.
func Collect(figs []Figures) Samples {
	s := Samples{Runs: len(figs), Dists: map[string]Dist{}, Rates: map[string]Rate{}}
	hung := map[string]bool{}
	for i := range figs {
		for _, fam := range Families {
			for _, m := range fam.Members(&figs[i]) {
				if name := fam.Name + ":" + m; HungFigure(name) {
					hung[name] = true
				}
			}
		}
	}
	for i := range Table {
		fig := &Table[i]
		switch {
		case fig.Samples != nil:
			d := Dist{Unit: fig.Unit, Better: fig.Better, Values: []float64{}}
			for j := range figs {
				d.Values = append(d.Values, fig.Samples(&figs[j])...)
			}
			// A scenario-specific figure (kept in Extra) that no run of
			// the group has is not a distribution of this group.
			if fig.Field == "extra" && len(d.Values) == 0 {
				continue
			}
			s.Dists[fig.DistName()] = d
		case fig.Better != None:
			var r Rate
			for j := range figs {
				if v, ok := fig.Value(&figs[j]); ok {
					r.Trials++
					if fig.bad(v) {
						r.Events++
					}
				}
			}
			if fig.Field == "extra" && r.Trials == 0 {
				continue
			}
			s.Rates[fig.RateName()] = r
		}
	}
	// A scenario's worse_if outcomes are rates of bad runs under their own
	// name ("oom_kills > 1"), like "lockups > 0".
	worse := map[string]bool{}
	for i := range figs {
		for k := range figs[i].Extra {
			if fam, m, _ := strings.Cut(k, ":"); fam == WorseIfFamily {
				worse[m] = true
			}
		}
	}
	for m := range worse {
		var r Rate
		for j := range figs {
			if v, ok := figs[j].Extra[WorseIfFamily+":"+m]; ok {
				r.Trials++
				if v > 0 {
					r.Events++
				}
			}
		}
		s.Rates[m] = r
	}
	for name := range hung {
		var r Rate
		for j := range figs {
			if v, ok := figs[j].Value(name); ok {
				r.Trials++
				if v > 0 {
					r.Events++
				}
			}
		}
		s.Rates[name+" > 0"] = r
	}
	return s
}

// AddRate adds a rate the figures do not know (FailedRuns).
func (s *Samples) AddRate(name string, events, trials int) {
	if s.Rates == nil {
		s.Rates = map[string]Rate{}
	}
	s.Rates[name] = Rate{Events: events, Trials: trials}
}

// Estimate is a statistic with its 95% confidence interval (nil when the
// samples are too few for one).
type Estimate struct {
	Value float64     `json:"value"`
	CI    *[2]float64 `json:"ci95,omitempty"`
}

func (e *Estimate) String() string {
	if e == nil {
		return "-"
	}
	if e.CI == nil {
		return Num(e.Value)
	}
	return Num(e.Value) + " [" + Num(e.CI[0]) + ", " + Num(e.CI[1]) + "]"
}

// Num prints a statistic for people: whole numbers from 100 on, three
// significant digits below.
func Num(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// DistStats are the percentiles of one pooled distribution.
type DistStats struct {
	Name  string    `json:"name"`
	Unit  string    `json:"unit"`
	N     int       `json:"n"`
	P50   *Estimate `json:"p50,omitempty"`
	P95   *Estimate `json:"p95,omitempty"`
	P99   *Estimate `json:"p99,omitempty"`
	Notes []string  `json:"notes,omitempty"` // why a percentile or its CI is missing
}

// Summarize gives the percentiles of every distribution of s, by name.
func Summarize(s Samples) []DistStats {
	names := make([]string, 0, len(s.Dists))
	for n := range s.Dists {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]DistStats, 0, len(names))
	for _, n := range names {
		out = append(out, Describe(n, s.Dists[n]))
	}
	return out
}

// Describe gives N and p50/p95/p99 with bootstrap CIs: p50 from one
// sample (its CI from MinSamples), p95 from MinSamples, p99 from
// MinSamplesP99; below that a note says "too few samples".
func Describe(name string, d Dist) DistStats {
	st := DistStats{Name: name, Unit: d.Unit, N: len(d.Values)}
	for _, q := range []struct {
		p    float64
		dst  **Estimate
		need int
	}{{0.5, &st.P50, 1}, {0.95, &st.P95, MinSamples}, {0.99, &st.P99, MinSamplesP99}} {
		label := fmt.Sprintf("p%.0f", q.p*100)
		if st.N < q.need || st.N == 0 {
			st.Notes = append(st.Notes, fmt.Sprintf("%s: %s (N=%d, needs %d)", label, TooFew, st.N, max(q.need, 1)))
			continue
		}
		e := &Estimate{Value: Quantile(d.Values, q.p)}
		if st.N >= MinSamples {
			p := q.p
			lo, hi := BootstrapCI(d.Values, func(xs []float64) float64 { return sortedQuantile(xs, p) }, Seed(name+"/"+label))
			e.CI = finiteCI(lo, hi)
		} else {
			st.Notes = append(st.Notes, fmt.Sprintf("%s: no CI, %s (N=%d, needs %d)", label, TooFew, st.N, MinSamples))
		}
		*q.dst = e
	}
	return st
}

func finiteCI(lo, hi float64) *[2]float64 {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	return &[2]float64{lo, hi}
}

// Seed derives a generator seed from a name (FNV-1a 64).
func Seed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// sortedQuantile is the q-quantile (nearest rank, as Quantile) of sorted xs.
func sortedQuantile(xs []float64, q float64) float64 {
	return stat.Quantile(q, stat.Empirical, xs, nil)
}

// BootstrapCI is the 95% percentile-bootstrap interval of statistic over
// Resamples resamples of xs (with replacement) drawn from seed. statistic
// gets each resample sorted.
func BootstrapCI(xs []float64, statistic func(sorted []float64) float64, seed uint64) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	boot := make([]float64, Resamples)
	buf := make([]float64, len(xs))
	for i := range boot {
		resample(rng, xs, buf)
		boot[i] = statistic(buf)
	}
	return percentileInterval(boot)
}

func resample(rng *rand.Rand, xs, buf []float64) {
	for j := range buf {
		buf[j] = xs[rng.IntN(len(xs))]
	}
	sort.Float64s(buf)
}

// percentileInterval is the 2.5% and 97.5% quantiles of the bootstrap
// statistics (NaN ones dropped).
func percentileInterval(boot []float64) (float64, float64) {
	boot = slices.DeleteFunc(boot, math.IsNaN)
	if len(boot) == 0 {
		return math.NaN(), math.NaN()
	}
	sort.Float64s(boot)
	return sortedQuantile(boot, 0.025), sortedQuantile(boot, 0.975)
}

// Side is one group of a comparison.
type Side struct {
	N      int      `json:"n"`                // samples (distribution) or runs where defined (rate)
	Median *float64 `json:"median,omitempty"` // distribution
	Events *int     `json:"events,omitempty"` // rate: bad runs
}

// Comparison is one figure of a variant against the reference.
type Comparison struct {
	Figure string `json:"figure"`
	Kind   string `json:"kind"` // "distribution" or "rate"
	Unit   string `json:"unit,omitempty"`
	Test   string `json:"test"`
	// RefSide is the reference group (baseline), VarSide the one
	// compared with it.
	RefSide Side `json:"reference_side"`
	VarSide Side `json:"variant_side"`
	// Ratio is the variant's median over the reference's with its
	// bootstrap CI (distributions; nil when the reference median is 0).
	Ratio   *Estimate `json:"median_ratio,omitempty"`
	P       *float64  `json:"p,omitempty"` // two-sided
	Alpha   float64   `json:"alpha"`
	Verdict Verdict   `json:"verdict"`
}

// Test names.
const (
	TestMWExact       = "Mann-Whitney U (exact)"
	TestMWPermutation = "Mann-Whitney U (permutation)"
	TestMWNormal      = "Mann-Whitney U (normal approx., tie-corrected)"
	TestFisher        = "Fisher's exact"
)

// Compare tests every distribution and rate of variant against baseline
// (two-sided, at Alpha): the figures of either, sorted, distributions
// first. A figure only one side has is compared with an empty other side
// (too few samples).
func Compare(baseline, variant Samples) []Comparison {
	var out []Comparison
	for _, name := range union(baseline.Dists, variant.Dists) {
		b, v := baseline.Dists[name], variant.Dists[name]
		if b.Unit == "" {
			b.Unit, b.Better = v.Unit, v.Better
		}
		out = append(out, compareDist(name, b, v))
	}
	for _, name := range union(baseline.Rates, variant.Rates) {
		out = append(out, compareRate(name, baseline.Rates[name], variant.Rates[name]))
	}
	return out
}

func union[V any](a, b map[string]V) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func compareDist(name string, b, v Dist) Comparison {
	c := Comparison{Figure: name, Kind: "distribution", Unit: b.Unit, Alpha: Alpha,
		RefSide: Side{N: len(b.Values)}, VarSide: Side{N: len(v.Values)}}
	if len(b.Values) > 0 {
		m := Quantile(b.Values, 0.5)
		c.RefSide.Median = &m
	}
	if len(v.Values) > 0 {
		m := Quantile(v.Values, 0.5)
		c.VarSide.Median = &m
	}
	if len(b.Values) == 0 || len(v.Values) == 0 {
		c.Test, c.Verdict = "Mann-Whitney U", TooFewVerd
		return c
	}
	if *c.RefSide.Median != 0 {
		c.Ratio = &Estimate{Value: *c.VarSide.Median / *c.RefSide.Median}
		if len(b.Values) >= MinSamples && len(v.Values) >= MinSamples {
			c.Ratio.CI = medianRatioCI(b.Values, v.Values, Seed(name+"/ratio"))
		}
	}
	mw := MannWhitney(v.Values, b.Values, Seed(name+"/mw"))
	c.Test, c.P = mw.Test, &mw.P
	switch {
	case len(b.Values) < MinSamples || len(v.Values) < MinSamples:
		c.Verdict = TooFewVerd
	case mw.P >= Alpha || b.Better == None:
		c.Verdict = NoDifference
	default:
		// U of the variant above its mean: the variant's values tend to
		// be larger.
		larger := mw.U > float64(len(v.Values)*len(b.Values))/2
		if larger == (b.Better == Lower) {
			c.Verdict = Worse
		} else {
			c.Verdict = Better
		}
	}
	return c
}

// medianRatioCI is the percentile-bootstrap CI of median(v)/median(b),
// resampling both groups.
func medianRatioCI(b, v []float64, seed uint64) *[2]float64 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	bb, vb := make([]float64, len(b)), make([]float64, len(v))
	boot := make([]float64, Resamples)
	for i := range boot {
		resample(rng, b, bb)
		resample(rng, v, vb)
		mb := sortedQuantile(bb, 0.5)
		if mb == 0 {
			boot[i] = math.NaN()
			continue
		}
		boot[i] = sortedQuantile(vb, 0.5) / mb
	}
	return finiteCI(percentileInterval(boot))
}

func compareRate(name string, b, v Rate) Comparison {
	be, ve := b.Events, v.Events
	c := Comparison{Figure: name, Kind: "rate", Test: TestFisher, Alpha: Alpha,
		RefSide: Side{N: b.Trials, Events: &be}, VarSide: Side{N: v.Trials, Events: &ve}}
	if b.Trials == 0 || v.Trials == 0 {
		c.Verdict = TooFewVerd
		return c
	}
	p := FisherExact(v.Events, v.Trials-v.Events, b.Events, b.Trials-b.Events)
	c.P = &p
	switch {
	case b.Trials < MinSamples || v.Trials < MinSamples:
		c.Verdict = TooFewVerd
	case p >= Alpha:
		c.Verdict = NoDifference
	case float64(v.Events)/float64(v.Trials) > float64(b.Events)/float64(b.Trials):
		c.Verdict = Worse
	default:
		c.Verdict = Better
	}
	return c
}

// MWResult is a Mann-Whitney U test.
type MWResult struct {
	U    float64 // of the first sample: pairs (x, y) with x > y, ties 1/2
	P    float64 // two-sided
	Test string  // which p: exact, permutation or normal approximation
}

// Permutations is the number of random relabellings of the permutation
// test (small samples with ties).
const Permutations = 20000

// MannWhitney tests whether x and y come from one distribution,
// two-sided. Without ties and with both samples under 50 the p-value is
// exact (the distribution of U by counting, as R's wilcox.test); with ties
// and a sample under 10 it is a permutation test of Permutations
// relabellings drawn from seed; otherwise it is the normal approximation
// with tie correction and continuity correction (as R's wilcox.test with
// correct = TRUE).
func MannWhitney(x, y []float64, seed uint64) MWResult {
	m, n := len(x), len(y)
	all := append(append([]float64(nil), x...), y...)
	ranks, ties := rank(all)
	r1 := 0.0
	for i := range m {
		r1 += ranks[i]
	}
	u := r1 - float64(m*(m+1))/2
	res := MWResult{U: u}
	mean := float64(m*n) / 2
	switch {
	case len(ties) == 0 && m < 50 && n < 50:
		res.Test = TestMWExact
		counts := uCounts(m, n)
		total := 0.0
		for _, c := range counts {
			total += c
		}
		k := int(math.Round(u))
		var p float64
		if u > mean {
			for i := k; i < len(counts); i++ { // P(U >= u)
				p += counts[i]
			}
		} else {
			for i := 0; i <= k; i++ { // P(U <= u)
				p += counts[i]
			}
		}
		res.P = min(1, 2*p/total)
	case min(m, n) < 10:
		res.Test = TestMWPermutation
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		obs := math.Abs(u - mean)
		perm := append([]float64(nil), ranks...)
		hits := 0
		for range Permutations {
			// A random subset of m ranks for x (partial Fisher-Yates).
			s := 0.0
			for i := range m {
				j := i + rng.IntN(len(perm)-i)
				perm[i], perm[j] = perm[j], perm[i]
				s += perm[i]
			}
			if math.Abs(s-float64(m*(m+1))/2-mean) >= obs-1e-9 {
				hits++
			}
		}
		res.P = float64(hits+1) / float64(Permutations+1)
	default:
		res.Test = TestMWNormal
		nn := float64(m + n)
		tc := 0.0
		for _, t := range ties {
			tc += float64(t*t*t - t)
		}
		sigma := math.Sqrt(float64(m*n) / 12 * ((nn + 1) - tc/(nn*(nn-1))))
		z := u - mean
		if sigma == 0 {
			res.P = 1
			break
		}
		z = (z - 0.5*sign(z)) / sigma
		res.P = min(1, 2*min(distuv.UnitNormal.CDF(z), distuv.UnitNormal.Survival(z)))
	}
	return res
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// rank gives the mid-ranks (1-based, ties averaged) of xs and the sizes
// of its groups of ties.
func rank(xs []float64) ([]float64, []int) {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	ranks := make([]float64, len(xs))
	var ties []int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && xs[idx[j]] == xs[idx[i]] {
			j++
		}
		r := float64(i+1+j) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			ranks[idx[k]] = r
		}
		if j-i > 1 {
			ties = append(ties, j-i)
		}
		i = j
	}
	return ranks, ties
}

// uCounts[u] is the number of orderings of m x's and n y's (of C(m+n, m))
// in which U (pairs with the x after the y) is u.
func uCounts(m, n int) []float64 {
	size := m*n + 1
	// prev[j] and cur[j]: the polynomial for i x's and j y's.
	prev := make([][]float64, n+1)
	for j := range prev {
		prev[j] = make([]float64, size)
		prev[j][0] = 1 // no x: one ordering, U = 0
	}
	for i := 1; i <= m; i++ {
		cur := make([][]float64, n+1)
		for j := range cur {
			cur[j] = make([]float64, size)
			// Last one an x: it is above all j y's.
			for u := j; u < size; u++ {
				cur[j][u] += prev[j][u-j]
			}
			// Last one a y: U unchanged.
			if j > 0 {
				for u := range size {
					cur[j][u] += cur[j-1][u]
				}
			}
		}
		prev = cur
	}
	return prev[n]
}

// FisherExact is the two-sided p of Fisher's exact test on the 2x2 table
// [[a, b], [c, d]]: the probability, with the margins fixed, of every
// table at most as likely as this one (as R's fisher.test).
func FisherExact(a, b, c, d int) float64 {
	r1, c1, n := a+b, a+c, a+b+c+d
	lo, hi := max(0, c1-(n-r1)), min(r1, c1)
	logp := func(x int) float64 {
		return lchoose(r1, x) + lchoose(n-r1, c1-x) - lchoose(n, c1)
	}
	obs := logp(a)
	p := 0.0
	for x := lo; x <= hi; x++ {
		if lx := logp(x); lx <= obs+1e-7 {
			p += math.Exp(lx)
		}
	}
	return min(1, p)
}

func lchoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

package metrics

import (
	"sort"
	"strconv"
	"strings"
)

// Units of figures.
const (
	Count   = "count"
	Ratio   = "ratio"
	Seconds = "s"
	Millis  = "ms"
	Bool    = "bool" // 1 true, 0 false
)

// Figure is one row of the figure table.
type Figure struct {
	Name  string // in expectations, run.json and reports; never renamed
	Unit  string
	Doc   string // one line, for 'oomlab list --fields'
	Field string // the JSON field of Figures it is read from
	// Label is the short name in the one-line summary of a guest run
	// (KTAP, JUnit); "" keeps the figure off that line.
	Label string
	// Compare puts the figure in the report's Differences between
	// variants.
	Compare bool
	// Value reads the figure; false when the run does not define it (no
	// OOM event, no reap).
	Value func(*Figures) (float64, bool)
	// Samples marks a figure that summarises a per-run list of samples (a
	// latency): the lists of all repeats of a scenario x variant are
	// pooled into one distribution, named after Field, for the statistics
	// (stats.go). nil: the figure is one number per run.
	Samples func(*Figures) []float64
	// Better is the direction that is unambiguously better for the kernel,
	// or None. Only figures with a direction are compared with a test and
	// can make a variant "worse" than the reference.
	Better Direction
	// Limit: with Better set and no Samples, a run whose value is worse
	// than Limit (above it for Lower, below it for Higher) is a bad run,
	// and the rate of bad runs is compared (Fisher's exact test).
	Limit float64
}

// Direction is which way a figure is better.
type Direction uint8

// Directions.
const (
	None   Direction = iota // no direction: not tested
	Lower                   // fewer / shorter is better
	Higher                  // more is better (guest_alive)
)

func (d Direction) String() string {
	return [...]string{None: "none", Lower: "lower", Higher: "higher"}[d]
}

// MarshalText writes the name ("lower").
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Family is a set of figures named "<family>:<name>", the name being
// something the scenario defines (a stressor, a probe, a process name).
type Family struct {
	Name  string
	Unit  string
	Doc   string
	Field string // the JSON field of Figures it is read from
	// Members lists the names a run has figures for.
	Members func(*Figures) []string
	// Value reads the figure of one name.
	Value func(f *Figures, name string) (float64, bool)
}

func count(get func(*Figures) int) func(*Figures) (float64, bool) {
	return func(f *Figures) (float64, bool) { return float64(get(f)), true }
}

func kind(k string) func(*Figures) (float64, bool) {
	return count(func(f *Figures) int { return f.ByKind[k] })
}

// quantileOf is the q-quantile of a list, undefined when it is empty.
func quantileOf(get func(*Figures) []float64, q float64) func(*Figures) (float64, bool) {
	return func(f *Figures) (float64, bool) {
		xs := get(f)
		if len(xs) == 0 {
			return 0, false
		}
		return Quantile(xs, q), true
	}
}

// Table is every figure, each once. Rows with a Label are on the one-line
// summary of a run in this order.
var Table = []Figure{
	{Name: "oom_events", Unit: Count, Field: "oom_events", Label: "OOM events",
		Doc:   "number of 'invoked oom-killer' lines",
		Value: count(func(f *Figures) int { return f.OOMEvents })},
	{Name: "oom_kills", Unit: Count, Field: "oom_kills", Label: "kills", Compare: true,
		Doc:   "number of OOM kills",
		Value: count(func(f *Figures) int { return f.OOMKills })},
	{Name: "kills_per_oom_event", Unit: Ratio, Field: "kills_per_oom_event",
		Better: Lower, Limit: 1,
		Doc: "kills divided by OOM events",
		Value: func(f *Figures) (float64, bool) {
			return f.KillsPerOOMEvent, f.OOMEvents > 0
		}},
	{Name: "reaped", Unit: Count, Field: "reaped", Label: "reaped", Compare: true,
		Doc:   "'oom_reaper: reaped' lines",
		Value: count(func(f *Figures) int { return f.Reaped })},
	{Name: "handed_over", Unit: Count, Field: "handed_over", Label: "handed over", Compare: true,
		Doc:   "'Handed over <pid> to exit path.' lines",
		Value: count(func(f *Figures) int { return f.HandedOver })},
	{Name: "reap_failed", Unit: Count, Field: "reap_failed", Label: "reap failed",
		Doc:   "'oom_reaper: unable to reap' lines",
		Value: count(func(f *Figures) int { return f.ReapFailed })},
	{Name: "lockups", Unit: Count, Field: "lockups", Label: "lockups", Better: Lower,
		Doc:   "every lockup class: soft + hard lockups + RCU stalls + RCU kthread starvation + hung tasks + workqueue lockups + silent hangs seen from the host",
		Value: count(func(f *Figures) int { return f.Lockups })},
	{Name: "soft_lockups", Unit: Count, Field: "by_kind", Doc: "soft lockups", Value: kind("soft_lockup")},
	{Name: "hard_lockups", Unit: Count, Field: "by_kind", Doc: "hard lockups", Value: kind("hard_lockup")},
	{Name: "rcu_stalls", Unit: Count, Field: "by_kind", Doc: "RCU stalls", Value: kind("rcu_stall")},
	{Name: "hung_tasks", Unit: Count, Field: "by_kind", Doc: "hung tasks", Value: kind("hung_task"), Better: Lower},
	{Name: "workqueue_lockups", Unit: Count, Field: "by_kind", Doc: "'BUG: workqueue lockup' lines (a worker pool made no progress)", Value: kind("workqueue_lockup")},
	{Name: "rcu_kthread_starved", Unit: Count, Field: "by_kind", Doc: "'rcu_* kthread starved for N jiffies' lines (the RCU grace-period kthread got no CPU)", Value: kind("rcu_kthread_starved")},
	{Name: "silent_hangs", Unit: Count, Field: "by_kind", Better: Lower,
		Doc:   "host watchdog: no console output and no agent heartbeat for the scenario's watchdog time (backtraces in the event)",
		Value: kind("silent_hang")},
	{Name: "agent_lost", Unit: Count, Field: "by_kind", Better: Lower,
		Doc:   "host watchdog: the agent stopped answering for the watchdog time while the console still printed",
		Value: kind("agent_lost")},
	{Name: "qemu_exited", Unit: Count, Field: "by_kind",
		Doc:   "the machine exited by itself before the poweroff, without a kernel panic",
		Value: kind("qemu_exited")},
	{Name: "panics", Unit: Count, Field: "by_kind", Doc: "kernel panics", Value: kind("panic")},
	{Name: "bugs", Unit: Count, Field: "by_kind", Doc: "BUG lines", Value: kind("bug")},
	{Name: "warnings", Unit: Count, Field: "by_kind", Doc: "WARNING lines", Value: kind("warning")},
	{Name: "findings", Unit: Count, Field: "by_kind",
		Doc:   "lockups + panics + bugs + warnings + agent lost + QEMU exited",
		Value: count(func(f *Figures) int { return f.Findings() })},
	{Name: "first_kill_s", Unit: Seconds, Field: "first_kill_s",
		Doc: "seconds from stress start to the first OOM kill",
		Value: func(f *Figures) (float64, bool) {
			if f.FirstKillSeconds == nil {
				return 0, false
			}
			return *f.FirstKillSeconds, true
		}},
	{Name: "oom_to_freed_p95_ms", Unit: Millis, Field: "oom_to_freed_ms",
		Doc:     "95th percentile of time from OOM invocation to memory freed",
		Value:   quantileOf(func(f *Figures) []float64 { return f.OOMToFreedMs }, 0.95),
		Samples: func(f *Figures) []float64 { return f.OOMToFreedMs }, Better: Lower},
	{Name: "kill_to_exit_max_ms", Unit: Millis, Field: "kill_to_exit_ms",
		Doc:     "longest time from a stressor's OOM kill to its exit (the agent reaped it), over the victims that exited",
		Value:   quantileOf(func(f *Figures) []float64 { return f.KillToExitMs }, 1),
		Samples: func(f *Figures) []float64 { return f.KillToExitMs }, Better: Lower},
	{Name: "boot_s", Unit: Seconds, Field: "boot_s", Label: "boot",
		Doc:   "seconds from QEMU start to the agent answering over SSH",
		Value: func(f *Figures) (float64, bool) { return f.BootSeconds, true }},
	{Name: "stress_s", Unit: Seconds, Field: "stress_s",
		Doc:   "length of the stress phase in seconds",
		Value: func(f *Figures) (float64, bool) { return f.StressSeconds, true }},
	{Name: "guest_alive", Unit: Bool, Field: "guest_alive", Label: "alive", Better: Higher, Limit: 1,
		Doc: "the agent answered after the stress phase (true/false)",
		Value: func(f *Figures) (float64, bool) {
			if f.GuestAlive {
				return 1, true
			}
			return 0, true
		}},
}

// extraFamily is a family kept in Figures.Extra as "<family>:<name>".
func extraFamily(name, doc string) Family {
	return Family{Name: name, Unit: Count, Doc: doc, Field: "extra",
		Members: func(f *Figures) []string {
			var out []string
			for k := range f.Extra {
				if fam, n, _ := strings.Cut(k, ":"); fam == name {
					out = append(out, n)
				}
			}
			return out
		},
		Value: func(f *Figures, n string) (float64, bool) {
			v, ok := f.Extra[name+":"+n]
			return v, ok
		},
	}
}

// Families are the figures named by a prefix, a colon and a name the
// scenario defines ("killed:victim"). All are compared between variants.
var Families = []Family{
	extraFamily("killed", "instances of stressor <name> that ended by SIGKILL"),
	extraFamily("running", "instances of stressor <name> still running when the stress phase ended (killed but not gone counts here)"),
	extraFamily("exited", "instances of stressor <name> that exited with status 0"),
	extraFamily("failed", "instances of stressor <name> that exited with a non-zero status"),
	{Name: "left", Unit: Count, Field: "left",
		Doc: "processes named <name> (comm; zombies too) when the stress phase ended",
		Members: func(f *Figures) []string {
			var out []string
			for k := range f.Left {
				out = append(out, k)
			}
			return out
		},
		// A census lists the names it found: any other name had 0
		// processes; no census, no value.
		Value: func(f *Figures, n string) (float64, bool) {
			if f.Left == nil {
				return 0, false
			}
			return float64(f.Left[n]), true
		}},
	extraFamily(WorseIfFamily, "1 when the run had the scenario's bad outcome <name> (worse_if:), else 0; compared between variants as a rate"),
	func() Family {
		f := extraFamily("probe", "the number probe <name> read after the stress phase")
		f.Unit = ""
		return f
	}(),
	extraFamily(SelftestFamily, "stressor <name> printed KTAP (a kernel selftest): <name>.<case> is 1 when the case passed, 0 when it failed; <name> is 1 when the program ran to its end, 0 after a crash, a bail-out or a stop"),
	extraFamily(SelftestSkipFamily, "1 when case <name>.<case> of a selftest stressor was skipped, or (<name> alone) the whole program skipped itself; a skip is not a pass"),
}

// Lookup returns the table row of a figure, or nil.
func Lookup(name string) *Figure {
	for i := range Table {
		if Table[i].Name == name {
			return &Table[i]
		}
	}
	return nil
}

// FamilyOf splits "family:name" and returns the family, or nil.
func FamilyOf(figure string) (*Family, string) {
	fam, name, ok := strings.Cut(figure, ":")
	if !ok {
		return nil, ""
	}
	for i := range Families {
		if Families[i].Name == fam {
			return &Families[i], name
		}
	}
	return nil, ""
}

// Names are the table's figure names, sorted.
func Names() []string {
	n := make([]string, 0, len(Table))
	for _, f := range Table {
		n = append(n, f.Name)
	}
	sort.Strings(n)
	return n
}

// FamilyNames are the families, sorted.
func FamilyNames() []string {
	n := make([]string, 0, len(Families))
	for _, f := range Families {
		n = append(n, f.Name)
	}
	sort.Strings(n)
	return n
}

// Format writes a value of the figure the way the summaries do: counts
// as integers, seconds with two decimals, booleans as true/false.
func (fig *Figure) Format(v float64) string {
	switch fig.Unit {
	case Count:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case Seconds:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case Bool:
		return strconv.FormatBool(v != 0)
	case Millis:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// Summary is the figures of the one-line summary of a run, in order.
func Summary() []*Figure {
	var out []*Figure
	for i := range Table {
		if Table[i].Label != "" {
			out = append(out, &Table[i])
		}
	}
	return out
}

// DistName names the pooled distribution of a figure with Samples: its
// JSON field ("oom_to_freed_ms"), or, for a figure kept in Extra (one
// value per run), the figure's own name.
func (fig *Figure) DistName() string {
	if fig.Field == "extra" {
		return fig.Name
	}
	return fig.Field
}

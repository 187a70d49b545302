// Package scenario reads scenario files (YAML) and checks them before any
// guest boots: a typo in a field name or a size out of range is reported with
// the file, line and column and the fix, not discovered an hour into a run.
package scenario

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/protocol"
)

// Scenario is one scenario file.
type Scenario struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Guest       Guest      `yaml:"guest"`
	Setup       []Step     `yaml:"setup"`   // agent commands run before the stressors
	Actions     []Step     `yaml:"actions"` // agent commands run during the stress phase, at their time
	Probes      []Probe    `yaml:"probes"`  // numbers read from the guest after the stress phase
	Stressors   []Stressor `yaml:"stressors"`
	StopWhen    StopWhen   `yaml:"stop_when"`
	Duration    Duration   `yaml:"duration"` // longest stress phase (of each round); none with detectors
	Settle      Duration   `yaml:"settle"`   // quiet time after the stress phase
	// Rounds runs the stress phase this many times in the same guest
	// (default 1): the stressors and actions start afresh, the census and
	// probes are taken and the stressors stopped in each round, and
	// RoundSettle passes between rounds. The setup runs once per boot.
	Rounds      int      `yaml:"rounds"`
	RoundSettle Duration `yaml:"round_settle"` // quiet time between rounds (default: settle)
	Timeout     Duration `yaml:"timeout"`      // whole guest run, boot and every round included
	// Watchdog is the host watchdog's time: no console output and no
	// agent heartbeat for this long during the rounds is a silent hang
	// (the agent alone quiet: agent lost); the host then asks the guest
	// for backtraces and ends the run. Default: sized from the guest's
	// own detector timeouts (DefaultWatchdog), so that they speak first.
	Watchdog Duration `yaml:"watchdog"`
	Repeats  int      `yaml:"repeats"`
	Variants []string `yaml:"variants"`
	// TimingSensitive: the scenario's figures are latencies or the
	// outcome of a race, which another guest on the host would shift
	// (a vCPU thread waiting for a host core is time the guest's clock
	// counts), so 'oomlab run --jobs' runs it alone, with nothing beside
	// it. Required of a scenario whose expectations or key figure name
	// a latency (a figure in ms).
	TimingSensitive bool `yaml:"timing_sensitive"`
	// Detectors are the guest kernel's own detectors the scenario
	// provokes and waits for (soft_lockup, hard_lockup, rcu_stall,
	// hung_task; detectors.go): instead of a duration, the stress phase
	// lasts as long as the guest's settings, read after the setup, make
	// them take, and ends as soon as every one has reported.
	Detectors []string `yaml:"detectors"`
	// Requires names what the scenario needs of the kernel (see
	// Capabilities): a run whose kernel lacks one is skipped, not passed.
	Requires []Requirement `yaml:"requires"`
	// Expect maps a figure to a condition: "== 0", ">= 1", "<= 500", "true".
	Expect map[string]string `yaml:"expect"`
	// ExpectVariant adds or overrides conditions for one variant, e.g. the
	// latency the patched kernel must reach and the baseline does not.
	ExpectVariant map[string]map[string]string `yaml:"expect_variant"`
	// WorseIf names bad outcomes that are not failures of one run but
	// must not become more frequent on a variant (figure -> condition,
	// as in expect; e.g. oom_kills: "> 1", an overkill): each run records
	// whether it had one (worse_if:<figure> <condition>), and a variant
	// with significantly more such runs than baseline fails the run.
	WorseIf map[string]string `yaml:"worse_if"`
	// KeyFigure is the figure a sweep's grid shows in each cell beside
	// the verdict (e.g. oom_to_freed_p95_ms).
	KeyFigure string `yaml:"key_figure"`
	// Matrix makes the file a sweep (see ParseAll); read from the YAML
	// tree, not from this field.
	Matrix any `yaml:"matrix"`

	File string `yaml:"-"` // where it was read from
	// Sweep is the name of the file's scenario when this is one case of
	// its matrix (Name is then Sweep[axis=label,...]), Case the case's
	// labels in axis order and CaseIndex its place in the expansion.
	Sweep     string  `yaml:"-"`
	Case      []Param `yaml:"-"`
	CaseIndex int     `yaml:"-"`
	// watchdogAuto: Watchdog is the default, which a detector scenario
	// raises once it has read the guest's own values.
	watchdogAuto bool
}

// Guest is the shape of the VM.
type Guest struct {
	CPUs     int               `yaml:"cpus"`
	MemoryMB int               `yaml:"memory_mb"`
	Cmdline  string            `yaml:"cmdline"` // appended to the default kernel command line
	Sysctls  map[string]string `yaml:"sysctls"`
}

// Stressor is a program started in the guest, Count times.
type Stressor struct {
	Name    string `yaml:"name"`
	Command string `yaml:"command"`
	Count   int    `yaml:"count"`
	// Spawn holds how the agent starts it: policy (other, fifo, rr, batch,
	// idle), prio, cpus (affinity list, e.g. "0" or "1-3"), oom_score_adj,
	// nice and cgroup, written at the stressor's level in YAML.
	protocol.Spawn `yaml:",inline"`
	Background     bool `yaml:"background"` // runs for the whole stress phase; its end does not count as "all exited"
	// MayFail: a non-zero exit (or a signal other than the OOM killer's
	// SIGKILL) is what the scenario measures, not an error (exits.go).
	MayFail bool `yaml:"may_fail"`
	// StartAfter delays the start, measured from the start of the stress
	// phase: a victim allocates first, the hogs that push it over come later.
	StartAfter Duration `yaml:"start_after"`
}

// Step is one agent command of the setup or of the actions. In YAML it is
// either the command alone or a mapping with the fields below.
type Step struct {
	At       Duration `yaml:"at"` // actions: time from the stress start
	Command  string   `yaml:"command"`
	Variants []string `yaml:"variants"` // run only on these variants (default: all)
	// MayFail records a failure instead of ending the run, e.g. a debugfs
	// knob which only some variants have.
	MayFail bool `yaml:"may_fail"`
}

// UnmarshalYAML accepts "cmd args" as well as {command: ..., at: ...}.
func (st *Step) UnmarshalYAML(unmarshal func(any) error) error {
	var cmd string
	if err := unmarshal(&cmd); err == nil {
		*st = Step{Command: cmd}
		return nil
	}
	type plain Step // no UnmarshalYAML: no recursion
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*st = Step(p)
	return nil
}

// RunsOn says whether the step applies to a variant.
func (st Step) RunsOn(variant string) bool {
	return runsOn(st.Variants, variant)
}

// Probe reads one number from the guest after the stress phase, before the
// stressors are stopped: the output of Command, or, with Field, the number
// after Field on the line that starts with it ("oom_kill 3" in
// /proc/vmstat). It becomes the figure "probe:<name>".
type Probe struct {
	Name     string   `yaml:"name"`
	Command  string   `yaml:"command"`
	Field    string   `yaml:"field"`
	Variants []string `yaml:"variants"` // probe only these variants (default: all)
}

// RunsOn says whether the probe applies to a variant.
func (p Probe) RunsOn(variant string) bool {
	return runsOn(p.Variants, variant)
}

// runsOn: an empty list means every variant.
func runsOn(variants []string, variant string) bool {
	return len(variants) == 0 || slices.Contains(variants, variant)
}

// StopWhen ends the stress phase (each round's) early. The counts are
// of the round's console events.
type StopWhen struct {
	OOMKills int `yaml:"oom_kills"` // this many oom_kill events seen (then the foreground stressors get a grace to end)
	// OOMReaped ends the round as soon as this many "oom_reaper: reaped"
	// lines are seen: the victim's memory is free, which is what a latency
	// scenario measures; a starved victim would not end by itself.
	OOMReaped int  `yaml:"oom_reaped"`
	AllExited bool `yaml:"all_exited"` // every foreground stressor has ended
}

// Duration is a time.Duration written as "90s", "2m".
type Duration time.Duration

// UnmarshalText makes "30s" a Duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write e.g. 30s or 2m)", b)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	// variantRE: kbuild.ParseVariant's grammar, checked here so that a
	// scenario file is validated without the kernel build package.
	variantRE = regexp.MustCompile(`^(baseline|patched(:[1-9][0-9]{0,2})?)(\+test)?$`)
	sysctlRE  = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
)

// Error is a validation error at a position in a file.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Parse reads and validates one scenario; a file with a matrix, which
// holds several, is read with ParseAll.
func Parse(file string, data []byte) (*Scenario, error) {
	scs, err := ParseAll(file, data)
	if err != nil {
		return nil, err
	}
	if len(scs) != 1 || scs[0].Sweep != "" {
		return nil, &Error{File: file, Msg: fmt.Sprintf("a sweep of %d cases, not one scenario", len(scs))}
	}
	return scs[0], nil
}

// parse reads and validates one scenario without a matrix to expand.
func parse(file string, data []byte) (*Scenario, error) {
	var s Scenario
	if err := yaml.UnmarshalWithOptions(data, &s, yaml.DisallowUnknownField()); err != nil {
		return nil, yamlError(file, err)
	}
	s.File = file
	s.defaults()
	if field, msg := s.validate(); msg != "" {
		line, col := position(data, field)
		return nil, &Error{File: file, Line: line, Column: col, Msg: msg}
	}
	return &s, nil
}

// yamlError turns a go-yaml error into one line: file:line:col: message.
func yamlError(file string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		tok := ye.GetToken()
		msg := ye.GetMessage()
		if strings.Contains(msg, "unknown field") {
			msg += " (see 'oomlab list --fields' for the schema)"
		}
		if tok != nil {
			return &Error{File: file, Line: tok.Position.Line, Column: tok.Position.Column, Msg: msg}
		}
		return &Error{File: file, Msg: msg}
	}
	return &Error{File: file, Msg: err.Error()}
}

// position finds the line of a YAML path ("$.guest.cpus") for an error.
func position(data []byte, field string) (int, int) {
	if field == "" {
		return 0, 0
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return 0, 0
	}
	// A field left out (a defaulted name) has no position: point at the
	// nearest enclosing node that the file does have.
	for field != "$" && field != "" {
		if p, err := yaml.PathString(field); err == nil {
			if n, err := p.FilterFile(f); err == nil && n != nil && n.GetToken() != nil {
				return n.GetToken().Position.Line, n.GetToken().Position.Column
			}
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return 0, 0
}

func (s *Scenario) defaults() {
	if s.Guest.CPUs == 0 {
		s.Guest.CPUs = 2
	}
	if s.Guest.MemoryMB == 0 {
		s.Guest.MemoryMB = 256
	}
	if s.Repeats == 0 {
		s.Repeats = 1
	}
	if len(s.Variants) == 0 {
		s.Variants = []string{"baseline", "patched"}
	}
	if s.Duration == 0 && len(s.Detectors) == 0 {
		s.Duration = Duration(60 * time.Second)
	}
	if s.Settle == 0 {
		s.Settle = Duration(2 * time.Second)
	}
	if s.Rounds == 0 {
		s.Rounds = 1
	}
	if s.RoundSettle == 0 {
		s.RoundSettle = s.Settle
	}
	if s.Timeout == 0 && s.Rounds >= 1 {
		// Boot and teardown, and every round at its longest: with
		// detectors, their wait as the command line and sysctls set
		// their values (validate reports a plan that fails).
		s.Timeout = Duration(120*time.Second + time.Duration(s.Rounds)*s.LongestStress() + time.Duration(s.Rounds-1)*s.RoundSettle.D())
	}
	if s.Watchdog == 0 {
		s.Watchdog = Duration(DefaultWatchdog(DefaultCmdline+" "+s.Guest.Cmdline, s.Guest.Sysctls))
		s.watchdogAuto = true
	}
	for i := range s.Stressors {
		if s.Stressors[i].Count == 0 {
			s.Stressors[i].Count = 1
		}
		if s.Stressors[i].Name == "" {
			if f := strings.Fields(s.Stressors[i].Command); len(f) > 0 {
				s.Stressors[i].Name = path.Base(f[0])
			}
		}
	}
}

// validate returns the YAML path of the first bad field and what is wrong.
func (s *Scenario) validate() (string, string) {
	switch {
	case !nameRE.MatchString(s.Name):
		return "$.name", fmt.Sprintf("name %q: use lower-case letters, digits and '-'", s.Name)
	case s.Guest.CPUs < 1 || s.Guest.CPUs > 64:
		return "$.guest.cpus", fmt.Sprintf("guest.cpus %d out of range 1..64", s.Guest.CPUs)
	case s.Guest.MemoryMB < 64 || s.Guest.MemoryMB > 65536:
		return "$.guest.memory_mb", fmt.Sprintf("guest.memory_mb %d out of range 64..65536", s.Guest.MemoryMB)
	case s.Repeats < 1 || s.Repeats > 10000:
		return "$.repeats", fmt.Sprintf("repeats %d out of range 1..10000", s.Repeats)
	case s.Rounds < 1 || s.Rounds > 1000:
		return "$.rounds", fmt.Sprintf("rounds %d out of range 1..1000", s.Rounds)
	case s.RoundSettle.D() < 0:
		return "$.round_settle", fmt.Sprintf("round_settle %s must not be negative", s.RoundSettle.D())
	case s.Duration.D() < 0 || s.Timeout.D() <= s.Duration.D():
		return "$.timeout", fmt.Sprintf("timeout %s must be longer than duration %s (boot and teardown need time too)", s.Timeout.D(), s.Duration.D())
	case s.Rounds > 1 && s.Timeout.D() <= time.Duration(s.Rounds)*s.Duration.D():
		return "$.timeout", fmt.Sprintf("timeout %s is too short for %d rounds of duration %s (%s, plus boot, round settles and teardown): raise timeout, or shorten duration or rounds",
			s.Timeout.D(), s.Rounds, s.Duration.D(), time.Duration(s.Rounds)*s.Duration.D())
	case s.Watchdog.D() < 5*time.Second:
		return "$.watchdog", fmt.Sprintf("watchdog %s: at least 5s (the agent answers every 250 ms, but a loaded host can stall it for seconds)", s.Watchdog.D())
	case s.StopWhen.OOMKills < 0:
		return "$.stop_when.oom_kills", "stop_when.oom_kills must be >= 0"
	case s.StopWhen.OOMReaped < 0:
		return "$.stop_when.oom_reaped", "stop_when.oom_reaped must be >= 0"
	}
	for k := range s.Guest.Sysctls {
		if !sysctlRE.MatchString(k) {
			return "$.guest.sysctls", fmt.Sprintf("sysctl %q: write it as kernel.name", k)
		}
	}
	for i, v := range s.Variants {
		if !variantRE.MatchString(v) {
			return fmt.Sprintf("$.variants[%d]", i), fmt.Sprintf("variant %q: want baseline, patched or patched:N (the first N patches)", v)
		}
	}
	if field, msg := s.checkRequires(); msg != "" {
		return field, msg
	}
	// The stressors and actions start within the stress phase: the
	// duration, or with detectors (no duration) the timeout.
	phase, phaseName := s.Duration.D(), fmt.Sprintf("the duration %s", s.Duration.D())
	if len(s.Detectors) > 0 {
		phase, phaseName = s.Timeout.D(), fmt.Sprintf("the timeout %s", s.Timeout.D())
	}
	names := map[string]bool{}
	for i, st := range s.Stressors {
		at := fmt.Sprintf("$.stressors[%d]", i)
		switch {
		case strings.TrimSpace(st.Command) == "":
			return at, fmt.Sprintf("stressors[%d]: command is empty", i)
		case !nameRE.MatchString(st.Name):
			return at + ".name", fmt.Sprintf("stressors[%d].name %q: use lower-case letters, digits and '-'", i, st.Name)
		case names[st.Name]:
			return at + ".name", fmt.Sprintf("stressors[%d].name %q is used twice: give each stressor its own name", i, st.Name)
		case st.Count < 1 || st.Count > 256:
			return at + ".count", fmt.Sprintf("stressors[%d].count %d out of range 1..256", i, st.Count)
		case st.StartAfter.D() < 0 || st.StartAfter.D() >= phase:
			return at + ".start_after", fmt.Sprintf("stressors[%d].start_after %s must be within %s", i, st.StartAfter.D(), phaseName)
		}
		if field, msg := checkSpawn(at, i, st.Spawn, s.Guest.CPUs); msg != "" {
			return field, msg
		}
		names[st.Name] = true
	}
	for i, st := range s.Setup {
		at := fmt.Sprintf("$.setup[%d]", i)
		if strings.TrimSpace(st.Command) == "" {
			return at, fmt.Sprintf("setup[%d]: command is empty", i)
		}
		if st.At != 0 {
			return at + ".at", fmt.Sprintf("setup[%d]: 'at' is for actions; setup runs before the stress phase", i)
		}
		if field, msg := s.checkVariants(at, st.Variants); msg != "" {
			return field, msg
		}
	}
	for i, st := range s.Actions {
		at := fmt.Sprintf("$.actions[%d]", i)
		switch {
		case strings.TrimSpace(st.Command) == "":
			return at, fmt.Sprintf("actions[%d]: command is empty", i)
		case st.At.D() < 0 || st.At.D() >= phase:
			return at + ".at", fmt.Sprintf("actions[%d].at %s must be within %s", i, st.At.D(), phaseName)
		}
		if field, msg := s.checkVariants(at, st.Variants); msg != "" {
			return field, msg
		}
	}
	if field, msg := s.checkDetectors(); msg != "" { // after the stressors: their start_after adds to the wait
		return field, msg
	}
	probes := map[string]bool{}
	for i, p := range s.Probes {
		at := fmt.Sprintf("$.probes[%d]", i)
		switch {
		case !nameRE.MatchString(p.Name):
			return at + ".name", fmt.Sprintf("probes[%d].name %q: use lower-case letters, digits and '-'", i, p.Name)
		case probes[p.Name]:
			return at + ".name", fmt.Sprintf("probes[%d].name %q is used twice", i, p.Name)
		case strings.TrimSpace(p.Command) == "":
			return at + ".command", fmt.Sprintf("probes[%d]: command is empty", i)
		}
		probes[p.Name] = true
		if field, msg := s.checkVariants(at, p.Variants); msg != "" {
			return field, msg
		}
	}
	if s.KeyFigure != "" {
		if msg := s.checkFigure(s.KeyFigure); msg != "" {
			return "$.key_figure", "key_figure: " + msg
		}
	}
	if field, msg := s.checkExpect("expect", s.Expect); msg != "" {
		return field, msg
	}
	if field, msg := s.checkExpect("worse_if", s.WorseIf); msg != "" {
		return field, msg
	}
	for v, m := range s.ExpectVariant {
		if !slices.Contains(s.Variants, v) {
			return "$.expect_variant." + v, fmt.Sprintf("expect_variant: variant %q is not in variants %v", v, s.Variants)
		}
		if field, msg := s.checkExpect("expect_variant."+v, m); msg != "" {
			return field, msg
		}
	}
	if field, name := s.latencyFigure(); field != "" && !s.TimingSensitive {
		return field, fmt.Sprintf("%s is a latency: add timing_sensitive: true, so that oomlab run --jobs runs the scenario alone (a latency measured beside other guests is partly theirs)", name)
	}
	return "", ""
}

// latencyFigure is the first latency (a figure in ms) the expectations or
// the key figure name, with its YAML path; "" when there is none.
func (s *Scenario) latencyFigure() (string, string) {
	isLatency := func(name string) bool {
		f := metrics.Lookup(name)
		return f != nil && f.Unit == metrics.Millis
	}
	if isLatency(s.KeyFigure) {
		return "$.key_figure", s.KeyFigure
	}
	check := func(at string, m map[string]string) (string, string) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if isLatency(k) {
				return "$." + at + "." + k, k
			}
		}
		return "", ""
	}
	if field, name := check("expect", s.Expect); field != "" {
		return field, name
	}
	for _, v := range slices.Sorted(maps.Keys(s.ExpectVariant)) {
		if field, name := check("expect_variant."+v, s.ExpectVariant[v]); field != "" {
			return field, name
		}
	}
	return "", ""
}

// checkSpawn checks how a stressor is started: protocol.Spawn.Validate (the
// agent applies the same checks), and that its CPUs exist in the guest.
func checkSpawn(at string, i int, sp protocol.Spawn, guestCPUs int) (string, string) {
	if err := sp.Validate(); err != nil {
		field := ""
		var fe *protocol.FieldError
		if errors.As(err, &fe) {
			field = "." + fe.Field
		}
		return at + field, fmt.Sprintf("stressors[%d].%v", i, err)
	}
	if sp.CPUs != "" {
		cpus, _ := protocol.ParseCPUList(sp.CPUs) // valid: checked above
		for _, c := range cpus {
			if c >= guestCPUs {
				return at + ".cpus", fmt.Sprintf("stressors[%d].cpus %q: CPU %d, but the guest has %d vCPUs (0..%d)", i, sp.CPUs, c, guestCPUs, guestCPUs-1)
			}
		}
	}
	return "", ""
}

func (s *Scenario) checkVariants(at string, vs []string) (string, string) {
	for j, v := range vs {
		if !slices.Contains(s.Variants, v) {
			return fmt.Sprintf("%s.variants[%d]", at, j), fmt.Sprintf("%s: variant %q is not in variants %v", strings.TrimPrefix(at, "$."), v, s.Variants)
		}
	}
	return "", ""
}

// checkFigure says what is wrong with a figure name, or "".
func (s *Scenario) checkFigure(k string) string {
	if !strings.Contains(k, ":") {
		if metrics.Lookup(k) == nil {
			return fmt.Sprintf("unknown figure %q (known: %s, and %s)", k, strings.Join(metrics.Names(), ", "), strings.Join(familyNames(), ", "))
		}
		return ""
	}
	fam, name := metrics.FamilyOf(k)
	if fam == nil {
		f, _, _ := strings.Cut(k, ":")
		return fmt.Sprintf("unknown figure family %q in %q (known: %s)", f, k, strings.Join(familyNames(), ", "))
	}
	switch fam.Name {
	case "left":
		if name == "" || len(name) > 15 {
			return fmt.Sprintf("%q: a process name (comm) has 1..15 characters", k)
		}
	case "probe":
		for _, p := range s.Probes {
			if p.Name == name {
				return ""
			}
		}
		return fmt.Sprintf("%q: no probe named %q in probes", k, name)
	default:
		if !slices.Contains(s.StressorNames(), name) {
			return fmt.Sprintf("%q: no stressor named %q", k, name)
		}
	}
	return ""
}

func (s *Scenario) checkExpect(at string, m map[string]string) (string, string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if msg := s.checkFigure(k); msg != "" {
			return "$." + at + "." + k, at + ": " + msg
		}
		if _, err := metrics.ParseCondition(m[k]); err != nil {
			return "$." + at + "." + k, fmt.Sprintf("%s.%s: %v", at, k, err)
		}
	}
	return "", ""
}

// Expectations returns the conditions that apply to one variant.
func (s *Scenario) Expectations(variant string) map[string]string {
	out := make(map[string]string, len(s.Expect))
	for k, v := range s.Expect {
		out[k] = v
	}
	for k, v := range s.ExpectVariant[variant] {
		out[k] = v
	}
	return out
}

// LongestStress is a round's stress phase at its longest as far as the
// file tells: the duration, or with detectors their wait as the command
// line and sysctls set their values (the run reads the guest's own).
func (s *Scenario) LongestStress() time.Duration {
	if len(s.Detectors) > 0 {
		if p, err := s.staticDetectorPlan(); err == nil {
			return p.wait
		}
	}
	return s.Duration.D()
}

// StressorNames are the names of the scenario's stressors, in file order.
func (s *Scenario) StressorNames() []string {
	n := make([]string, len(s.Stressors))
	for i, st := range s.Stressors {
		n[i] = st.Name
	}
	return n
}

func familyNames() []string {
	n := metrics.FamilyNames()
	for i := range n {
		n[i] += ":<name>"
	}
	return n
}

// SetsFile is the file of a scenario directory that names sets of
// scenarios (package suite) and is not a scenario itself.
const SetsFile = "sets.yaml"

// LoadDir reads every *.yaml in dir of fsys but SetsFile, by name; a
// sweep gives one entry per case (see Cases).
func LoadDir(fsys fs.FS, dir string) (map[string]*Scenario, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	out := map[string]*Scenario{}
	for _, f := range files {
		if path.Base(f) == SetsFile {
			continue
		}
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		scs, err := ParseAll(f, data)
		if err != nil {
			return nil, err
		}
		for _, s := range scs {
			// A name is a scenario's or a sweep's, in one file only.
			base := cmp.Or(s.Sweep, s.Name)
			for _, prev := range out {
				if cmp.Or(prev.Sweep, prev.Name) == base && prev.File != f {
					return nil, &Error{File: f, Msg: fmt.Sprintf("scenario name %q is also used by %s", base, prev.File)}
				}
			}
			out[s.Name] = s
		}
	}
	return out, nil
}

// Cases are the cases of the sweep named base in scs, in expansion order
// (nil if there is no such sweep).
func Cases(scs map[string]*Scenario, base string) []*Scenario {
	var out []*Scenario
	for _, s := range scs {
		if s.Sweep == base {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CaseIndex < out[j].CaseIndex })
	return out
}

// watchdogMargin is what the host watchdog's default time gives the
// guest's detectors beyond their own timeouts.
const watchdogMargin = 15 * time.Second

// DefaultWatchdog is the host watchdog's time for a guest with this
// kernel command line and these sysctls (bootValues: 6.12's defaults for
// the rest): long enough for the guest's own detectors to report first (a
// hard lockup needs up to 2 x watchdog_thresh and the soft lockup report
// 2 x watchdog_thresh, so 4 x watchdog_thresh; an RCU stall
// rcu_cpu_stall_timeout; a hung task hung_task_timeout_secs), plus a
// margin. For oomlab's guests (thresh 10, RCU 21 s, hung task 30 s): 55 s.
// A detector scenario raises it to its detectors' bounds once it has read
// the guest's values (runner.go).
func DefaultWatchdog(cmdline string, sysctls map[string]string) time.Duration {
	v := bootValues(cmdline, sysctls)
	longest := max(4*v[valWatchdogThresh.name], v[valRCUStallTimeout.name], v[valHungTimeout.name], 0)
	return time.Duration(longest)*time.Second + watchdogMargin
}

// checkDetectors validates detectors: (called by validate): known names,
// each once, no duration, and a timeout that holds the wait as the
// command line and sysctls set the values (the run reads the guest's own
// and errors if they do not fit).
func (s *Scenario) checkDetectors() (string, string) {
	if len(s.Detectors) == 0 {
		return "", ""
	}
	seen := map[string]bool{}
	for i, name := range s.Detectors {
		at := fmt.Sprintf("$.detectors[%d]", i)
		if _, ok := lookupDetector(name); !ok {
			return at, fmt.Sprintf("detectors[%d]: unknown detector %q (known: %s)", i, name, strings.Join(detectorNames(), ", "))
		}
		if seen[name] {
			return at, fmt.Sprintf("detectors[%d]: %q is named twice", i, name)
		}
		seen[name] = true
	}
	if s.Duration != 0 {
		return "$.duration", "duration: a scenario with detectors waits as long as the guest's detectors need (read from the guest at run time) and ends when all have reported: leave duration out"
	}
	p, err := s.staticDetectorPlan()
	if err != nil {
		return "$.detectors", "detectors: " + err.Error()
	}
	if need := time.Duration(s.Rounds)*p.wait + time.Duration(s.Rounds-1)*s.RoundSettle.D(); s.Timeout.D() <= need {
		return "$.timeout", fmt.Sprintf("timeout %s is too short for the detectors' wait of %.0fs per round (%s, plus the margin), plus boot and teardown: raise timeout",
			s.Timeout.D(), p.wait.Seconds(), p.worst)
	}
	return "", ""
}

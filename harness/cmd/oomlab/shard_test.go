package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"oomlab/harness/internal/metrics"
	"oomlab/harness/internal/report"
	"oomlab/harness/internal/results"
	"oomlab/harness/internal/suite"
)

// repoRoot is the repository, from this package's directory.
const repoRoot = "../../.."

// writeShards writes the n shard run directories of `oomlab run SET
// --shard i/n` (with made-up figures: no guest boots), shard i under
// dirOf(i), as 'oomlab run' lays them out: DIR/<run-id>/.
func writeShards(t *testing.T, set string, n int, dirOf func(i int) string) {
	t.Helper()
	b, err := builtin()
	if err != nil {
		t.Fatal(err)
	}
	scs, err := b.Resolve([]string{set})
	if err != nil {
		t.Fatal(err)
	}
	req, err := (&kernelFlags{jobs: 1}).request("all")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		plan := suite.NewPlan(scs, req, 0)
		plan.Shard = suite.Shard{Index: i, Count: n}
		rec := &results.Run{Version: "test", Shard: plan.ShardRecord()}
		for _, v := range plan.ShardVariants() {
			rec.Kernels = append(rec.Kernels, results.Kernel{Variant: v, Key: "key-" + v})
		}
		dir, err := suite.Create(dirOf(i), rec)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range plan.Units() {
			if u.Shard == i {
				rec.Results = append(rec.Results, &results.Result{Scenario: u.Scenario, Variant: u.Variant, Repeat: u.Repeat,
					Verdict: results.Pass, Started: time.Now(), Figures: metrics.Figures{GuestAlive: true}})
			}
		}
		now := time.Now()
		rec.Finished, rec.Complete, rec.Verdict = &now, true, results.Pass
		if err := report.Save(dir, rec); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRunArgs runs the example's `oomlab run` command line for shard i of
// n with a QEMU that does not exist: the flags, --shard among them, must
// parse (the command gets as far as looking for QEMU).
func checkRunArgs(t *testing.T, args []string) {
	t.Helper()
	_, stderr, code := run(t, t.TempDir(), append(args, "--qemu", "/nonexistent/qemu")...)
	if code != 2 || !strings.Contains(stderr, `QEMU binary "/nonexistent/qemu" not found`) {
		t.Errorf("oomlab %s: exit %d, %q: the flags do not parse", strings.Join(args, " "), code, stderr)
	}
}

// shardFlag finds "--shard X/N" in a command line: X and N.
func shardFlag(t *testing.T, line string) (string, int) {
	t.Helper()
	m := regexp.MustCompile(`--shard (\S+)/(\d+)(\s|$)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%q: no --shard i/n", line)
	}
	n, _ := strconv.Atoi(m[2])
	return m[1], n
}

// lineWith is the line of a script that contains s.
func lineWith(t *testing.T, script, s string) string {
	t.Helper()
	for _, l := range strings.Split(script, "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	t.Fatalf("no line with %q in\n%s", s, script)
	return ""
}

// oomlabArgs are the arguments of the oomlab command on a line, up to a
// shell operator, with the shell's quotes taken off.
func oomlabArgs(line string) []string {
	f := strings.Fields(line)
	i := slices.IndexFunc(f, func(s string) bool { return strings.HasSuffix(s, "bin/oomlab") })
	var out []string
	for _, a := range f[i+1:] {
		if a == "||" || a == "&&" || a == ";" {
			break
		}
		out = append(out, strings.Trim(a, `"'`))
	}
	return out
}

type ghStep struct {
	Name string         `yaml:"name"`
	Uses string         `yaml:"uses"`
	Run  string         `yaml:"run"`
	If   string         `yaml:"if"`
	With map[string]any `yaml:"with"`
}

type ghJob struct {
	Needs    any    `yaml:"needs"`
	If       string `yaml:"if"`
	Strategy struct {
		FailFast *bool            `yaml:"fail-fast"`
		Matrix   map[string][]int `yaml:"matrix"`
	} `yaml:"strategy"`
	Steps []ghStep `yaml:"steps"`
}

func (j ghJob) step(t *testing.T, pred func(ghStep) bool, what string) ghStep {
	t.Helper()
	i := slices.IndexFunc(j.Steps, pred)
	if i < 0 {
		t.Fatalf("no step %s", what)
	}
	return j.Steps[i]
}

// TestGitHubShardsWorkflow: the matrix is shards 1..n and each runs
// --shard <its index>/n with flags that parse; each uploads its results
// under its own name; the merge job, after all of them, downloads them
// all and its `oomlab merge` line, on that layout, merges them.
func TestGitHubShardsWorkflow(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, ".github/workflows/oomlab-shards.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Env  map[string]string `yaml:"env"`
		Jobs map[string]ghJob  `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(src, &wf); err != nil {
		t.Fatal(err)
	}
	shard, merge := wf.Jobs["shard"], wf.Jobs["merge"]
	matrix := shard.Strategy.Matrix["shard"]
	runStep := shard.step(t, func(s ghStep) bool { return strings.Contains(s.Run, "oomlab run") }, "running oomlab run")
	line := lineWith(t, runStep.Run, "oomlab run")
	idx, n := shardFlag(t, strings.ReplaceAll(line, "${{ matrix.shard }}", "MATRIX"))
	if idx != "MATRIX" {
		t.Errorf("%q: want --shard ${{ matrix.shard }}/n", line)
	}
	if len(matrix) != n {
		t.Errorf("matrix %v, --shard .../%d: want %d shards", matrix, n, n)
	}
	for k, i := range matrix {
		if i != k+1 {
			t.Errorf("matrix %v: want 1..%d in order", matrix, n)
		}
	}
	if shard.Strategy.FailFast == nil || *shard.Strategy.FailFast {
		t.Error("fail-fast must be false: one failing shard must not cancel the others")
	}
	set := strings.TrimSuffix(strings.TrimPrefix(wf.Env["SET"], "${{ github.event.inputs.set || '"), "' }}")
	for _, i := range matrix {
		args := oomlabArgs(strings.ReplaceAll(strings.ReplaceAll(line, "${{ matrix.shard }}", strconv.Itoa(i)), `"$SET"`, set))
		if args[0] != "run" || args[1] != set || !slices.Contains(args, strconv.Itoa(i)+"/"+strconv.Itoa(n)) {
			t.Errorf("shard %d: args %v", i, args)
		}
		checkRunArgs(t, args)
	}
	results := oomlabArgs(line)[slices.Index(oomlabArgs(line), "--results")+1]
	up := shard.step(t, func(s ghStep) bool { return strings.HasPrefix(s.Uses, "actions/upload-artifact@") }, "uploading the shard")
	upName, _ := up.With["name"].(string)
	if !strings.Contains(upName, "${{ matrix.shard }}") || strings.TrimSuffix(up.With["path"].(string), "/") != results || up.If != "always()" {
		t.Errorf("upload %+v: want a name per shard, the --results directory %s, always", up, results)
	}

	if merge.Needs != "shard" || !strings.Contains(merge.If, "always()") {
		t.Errorf("merge job: needs %v, if %q: want after every shard, always", merge.Needs, merge.If)
	}
	down := merge.step(t, func(s ghStep) bool { return strings.HasPrefix(s.Uses, "actions/download-artifact@") }, "downloading the shards")
	pattern, _ := down.With["pattern"].(string)
	downPath, _ := down.With["path"].(string)
	for _, i := range matrix {
		if ok, _ := filepath.Match(pattern, strings.ReplaceAll(upName, "${{ matrix.shard }}", strconv.Itoa(i))); !ok {
			t.Errorf("download pattern %q misses shard %d's artifact", pattern, i)
		}
	}
	mergeLine := lineWith(t, merge.step(t, func(s ghStep) bool { return strings.Contains(s.Run, "oomlab merge") }, "running oomlab merge").Run, "oomlab merge")
	margs := oomlabArgs(mergeLine)
	if margs[0] != "merge" || !strings.HasPrefix(margs[1], downPath+"/") {
		t.Fatalf("%q: want oomlab merge %s/...", mergeLine, downPath)
	}
	// The downloaded layout: <path>/<artifact name>/<run-id>/ per shard.
	// The merge line, run there, finds every shard and merges them.
	work := t.TempDir()
	writeShards(t, set, n, func(i int) string {
		return filepath.Join(work, downPath, strings.ReplaceAll(upName, "${{ matrix.shard }}", strconv.Itoa(i)))
	})
	checkMerge(t, work, margs, n)
	finalUp := merge.step(t, func(s ghStep) bool { return strings.HasPrefix(s.Uses, "actions/upload-artifact@") }, "uploading the merged run")
	if out := margs[slices.Index(margs, "--out")+1]; strings.TrimSuffix(finalUp.With["path"].(string), "/") != out {
		t.Errorf("merged upload %v, want --out %s", finalUp.With, out)
	}
}

// checkMerge expands the merge line's globs in work, runs it there and
// checks the merged run: complete, with every shard.
func checkMerge(t *testing.T, work string, margs []string, n int) {
	t.Helper()
	var args []string
	for _, a := range margs {
		if strings.Contains(a, "*") {
			m, _ := filepath.Glob(filepath.Join(work, a))
			if len(m) != n {
				t.Fatalf("%s matches %d directories, want the %d shards: %v", a, len(m), n, m)
			}
			args = append(args, m...)
			continue
		}
		args = append(args, a)
	}
	stdout, stderr, code := run(t, work, args...)
	out := margs[slices.Index(margs, "--out")+1]
	if !filepath.IsAbs(out) {
		out = filepath.Join(work, out)
	}
	rec, err := results.Load(out)
	if code != 0 || err != nil || !rec.Complete || len(rec.MergedFrom) != n {
		t.Fatalf("oomlab %v: exit %d, %v\n%s%s", args, code, err, stdout, stderr)
	}
}

type k8sDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		CompletionMode string `yaml:"completionMode"`
		Completions    *int   `yaml:"completions"`
		Parallelism    *int   `yaml:"parallelism"`
		Template       struct {
			Spec struct {
				Containers []struct {
					Command []string `yaml:"command"`
					Args    []string `yaml:"args"`
					Env     []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name string `yaml:"name"`
					PVC  *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
					HostPath *struct {
						Path string `yaml:"path"`
					} `yaml:"hostPath"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func intOrNone(p *int) string {
	if p == nil {
		return "none"
	}
	return strconv.Itoa(*p)
}

// claimAt is the PVC a job's container mounts at path.
func (d k8sDoc) claimAt(path string) string {
	s := d.Spec.Template.Spec
	for _, m := range s.Containers[0].VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for _, v := range s.Volumes {
			if v.Name == m.Name && v.PVC != nil {
				return v.PVC.ClaimName
			}
		}
	}
	return ""
}

// TestK8sShardsExample: an Indexed Job of n completions, n in parallel,
// pod JOB_COMPLETION_INDEX running --shard index+1/n with flags that
// parse, /dev/kvm mounted; a merge Job, applied on its own by label, that
// reads the same volume and merges every shard directory.
func TestK8sShardsExample(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, "examples/k8s/oomlab-shards.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []k8sDoc
	dec := yaml.NewDecoder(f)
	for {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	var shard, merge *k8sDoc
	for i := range docs {
		d := &docs[i]
		switch {
		case d.Kind == "Job" && d.Spec.CompletionMode == "Indexed":
			shard = d
		case d.Kind == "Job":
			merge = d
		}
		// `kubectl apply -l 'app.kubernetes.io/component!=merge'`
		// must apply everything but the merge Job.
		if (d.Metadata.Labels["app.kubernetes.io/component"] == "merge") != (d == merge) {
			t.Errorf("%s %s: only the merge Job may have component=merge", d.Kind, d.Metadata.Name)
		}
	}
	if shard == nil || merge == nil {
		t.Fatalf("want an Indexed Job and a merge Job, have %d documents", len(docs))
	}
	c := shard.Spec.Template.Spec.Containers[0]
	script := c.Args[len(c.Args)-1]
	line := lineWith(t, script, "bin/oomlab run")
	idx, n := shardFlag(t, line)
	if idx != "$((JOB_COMPLETION_INDEX+1))" {
		t.Errorf("%q: want --shard $((JOB_COMPLETION_INDEX+1))/n", line)
	}
	if shard.Spec.Completions == nil || *shard.Spec.Completions != n || shard.Spec.Parallelism == nil || *shard.Spec.Parallelism != n {
		t.Errorf("completions %s, parallelism %s: want both %d, the n of --shard", intOrNone(shard.Spec.Completions), intOrNone(shard.Spec.Parallelism), n)
	}
	kvm := false
	for _, v := range shard.Spec.Template.Spec.Volumes {
		kvm = kvm || v.HostPath != nil && v.HostPath.Path == "/dev/kvm"
	}
	if !kvm || !strings.Contains(script, "JOB_COMPLETION_INDEX") {
		t.Error("the shard pods need /dev/kvm from the node")
	}
	set := ""
	for _, e := range c.Env {
		if e.Name == "SET" {
			set = e.Value
		}
	}
	dirLine := lineWith(t, script, "dir=")
	for i := 0; i < n; i++ {
		ix := strconv.Itoa(i + 1)
		dir := strings.ReplaceAll(strings.TrimPrefix(dirLine, "dir="), "$((JOB_COMPLETION_INDEX+1))", ix)
		l := strings.NewReplacer("$((JOB_COMPLETION_INDEX+1))", ix, `"$SET"`, set, `"$dir"`, dir).Replace(line)
		args := oomlabArgs(l)
		if args[0] != "run" || args[1] != set || !slices.Contains(args, ix+"/"+strconv.Itoa(n)) {
			t.Errorf("pod %d: args %v", i, args)
		}
		checkRunArgs(t, args)
	}

	if shard.claimAt("/results") == "" || merge.claimAt("/results") != shard.claimAt("/results") {
		t.Errorf("merge reads claim %q at /results, the shards write %q", merge.claimAt("/results"), shard.claimAt("/results"))
	}
	mc := merge.Spec.Template.Spec.Containers[0]
	margs := oomlabArgs(lineWith(t, mc.Args[len(mc.Args)-1], "bin/oomlab merge"))
	// Lay the shards out as the pods do, with /results in a temporary
	// directory, and run the merge line there.
	work := t.TempDir()
	resultsOf := func(i int) string {
		return strings.ReplaceAll(strings.TrimPrefix(dirLine, "dir="), "$((JOB_COMPLETION_INDEX+1))", strconv.Itoa(i))
	}
	writeShards(t, set, n, func(i int) string { return filepath.Join(work, resultsOf(i)) })
	for k, a := range margs {
		if strings.HasPrefix(a, "/results") {
			margs[k] = strings.TrimPrefix(a, "/")
		}
	}
	if margs[0] != "merge" || !slices.Contains(margs, "--out") {
		t.Fatalf("merge args %v", margs)
	}
	checkMerge(t, work, margs, n)
}

// TestShardAndMergeCLI: bad --shard and bad merges are one line and exit
// 2; a good merge prints the tables and exits 0; --allow-partial merges
// without a shard and says so.
func TestShardAndMergeCLI(t *testing.T) {
	for _, bad := range []string{"0/2", "3/2", "x"} {
		_, stderr, code := run(t, t.TempDir(), "run", "smoke", "--shard", bad)
		if code != 2 || !strings.Contains(stderr, `--shard "`+bad+`"`) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("--shard %s: exit %d, %q", bad, code, stderr)
		}
	}
	work := t.TempDir()
	writeShards(t, "quick", 3, func(i int) string { return filepath.Join(work, "s"+strconv.Itoa(i)) })
	dirs := func(is ...int) []string {
		var out []string
		for _, i := range is {
			m, _ := filepath.Glob(filepath.Join(work, "s"+strconv.Itoa(i), "*"))
			out = append(out, m...)
		}
		return out
	}
	_, stderr, code := run(t, work, append([]string{"merge", "--out", "m1"}, dirs(1, 3)...)...)
	if code != 2 || !strings.HasPrefix(stderr, "oomlab: merge: shard 2/3 is missing (") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("missing shard: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(work, "m1")); err == nil {
		t.Error("a refused merge left m1")
	}
	stdout, stderr, code := run(t, work, append([]string{"merge", "--out", "m2", "--allow-partial"}, dirs(1, 3)...)...)
	if rec, err := results.Load(filepath.Join(work, "m2")); code != 0 || err != nil || rec.Complete || len(rec.Missing) == 0 ||
		!strings.Contains(stderr, "guest runs missing") || !strings.Contains(stdout, "SCENARIO") {
		t.Errorf("--allow-partial: exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
	stdout, stderr, code = run(t, work, append([]string{"merge", "--results", "merged"}, dirs(2, 1, 3)...)...)
	m, _ := filepath.Glob(filepath.Join(work, "merged", "*", "run.json"))
	if code != 0 || len(m) != 1 || !bytes.Contains([]byte(stdout), []byte("results: merged/")) {
		t.Errorf("merge into --results: exit %d, %v\n%s%s", code, m, stdout, stderr)
	}
}

package kbuild

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSortVariants(t *testing.T) {
	got := []string{"patched", "patched:3", "baseline", "patched:10", "patched:2"}
	SortVariants(got)
	if strings.Join(got, ",") != "baseline,patched:2,patched:3,patched:10,patched" {
		t.Errorf("SortVariants = %v", got)
	}
}

func TestParseRequest(t *testing.T) {
	three := fstest.MapFS{"series": {Data: []byte("# c\na.patch\nb.patch -p1\nc.patch\n")},
		"a.patch": {}, "b.patch": {}, "c.patch": {}}
	empty := fstest.MapFS{"series": {Data: []byte("# nothing yet\n")}}
	for _, c := range []struct {
		s      string
		series fstest.MapFS
		want   string
		all    bool
	}{
		{"all", three, "baseline,patched", true},
		{"all", empty, "baseline", true},
		{"bisect", three, "baseline,patched:1,patched:2,patched", false},
		{"bisect", empty, "baseline", false},
		{"patched:2, baseline", three, "patched:2,baseline", false},
	} {
		r, err := ParseRequest(c.s, c.series)
		if err != nil || strings.Join(r.Want, ",") != c.want || r.All != c.all {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %s all=%v", c.s, r, err, c.want, c.all)
		}
	}
	if r, err := ParseRequest("all", nil); err != nil || strings.Join(r.Want, ",") != "baseline" {
		t.Errorf("no series: %+v %v", r, err)
	}
	for _, bad := range []string{"fast", "patched:x", "patched:0", ""} {
		if _, err := ParseRequest(bad, three); err == nil || !strings.Contains(err.Error(), "want baseline, patched, patched:N") {
			t.Errorf("ParseRequest(%q): %v", bad, err)
		}
	}
}

func TestPlan(t *testing.T) {
	lists := map[string][]string{
		"smoke": {"baseline", "patched"},
		"knob":  {"baseline", "patched:3", "patched"},
		"idle":  {"baseline"},
	}
	order := []string{"smoke", "knob", "idle"}
	cases := []struct {
		req   Request
		build string
		runs  map[string]string // scenario -> variants it runs on
	}{
		{Request{[]string{"baseline", "patched"}, true}, "baseline,patched:3,patched",
			map[string]string{"smoke": "baseline,patched", "knob": "baseline,patched:3,patched", "idle": "baseline"}},
		{Request{[]string{"baseline"}, true}, "baseline", // all, empty series
			map[string]string{"smoke": "baseline", "knob": "baseline", "idle": "baseline"}},
		{Request{[]string{"patched"}, false}, "patched",
			map[string]string{"smoke": "patched", "knob": "patched", "idle": ""}},
		{Request{[]string{"baseline", "patched:1", "patched:2", "patched"}, false}, "baseline,patched:1,patched:2,patched", // bisect of a 3-patch series
			map[string]string{"smoke": "baseline,patched:1,patched:2,patched", "knob": "baseline,patched:1,patched:2,patched", "idle": "baseline"}},
	}
	for _, c := range cases {
		var all [][]string
		for _, n := range order {
			all = append(all, lists[n])
		}
		build := c.req.Plan(all...)
		if strings.Join(build, ",") != c.build {
			t.Errorf("%+v: builds %v, want %s", c.req, build, c.build)
		}
		for _, n := range order {
			var got []string
			for _, v := range build {
				if c.req.Runs(lists[n], v) {
					got = append(got, v)
				}
			}
			if strings.Join(got, ",") != c.runs[n] {
				t.Errorf("%+v: %s runs %v, want %s", c.req, n, got, c.runs[n])
			}
		}
	}
}

func TestReadFragments(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), 0o644)
		return p
	}
	a := write("a.config", "# debug\nCONFIG_LOCKDEP=y\n")
	write("b.config", "# CONFIG_KASAN is not set\n")
	if f, err := ReadFragments(a); err != nil || len(f) != 1 || f[0].Name != a {
		t.Errorf("file: %v %v", f, err)
	}
	if f, err := ReadFragments(dir); err != nil || len(f) != 2 || !strings.HasSuffix(f[1].Name, "b.config") {
		t.Errorf("dir: %v %v", f, err)
	}
	bad := write("bad.conf", "CONFIG_FOO y\n")
	empty := write("empty.conf", "# nothing\n")
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.config"), "missing.config: no such file"},
		{bad, "bad.conf:1: cannot parse"},
		{empty, "empty.conf: no CONFIG_ assignment"},
		{t.TempDir(), "no *.config fragments"},
	} {
		_, err := ReadFragments(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ReadFragments(%s) = %v, want one line with %q", c.path, err, c.want)
		}
	}
}

func TestTestVariants(t *testing.T) {
	got := []string{"patched+test", "patched:3+test", "baseline", "patched:2+test", "patched:3", "baseline+test"}
	SortVariants(got)
	if strings.Join(got, ",") != "baseline,baseline+test,patched:2+test,patched:3,patched:3+test,patched+test" {
		t.Errorf("SortVariants = %v", got)
	}
	for v, want := range map[string]string{"patched:2+test": "patched 2", "baseline+test": "baseline 0", "patched+test": "patched 0"} {
		k, n, err := ParseVariant(v)
		if err != nil || k+" "+strconv.Itoa(n) != want || !WithTest(v) {
			t.Errorf("ParseVariant(%q) = %s %d %v", v, k, n, err)
		}
	}
	for _, v := range []string{"patched+tests", "+test", "patched:0+test", "test"} {
		if _, _, err := ParseVariant(v); err == nil {
			t.Errorf("ParseVariant(%q) accepted", v)
		}
	}
	if got := localVersion("patched:2+test"); got != "-oomlab-patched-2-test" {
		t.Errorf("localVersion = %q", got)
	}
	all := Request{Want: []string{"baseline", "patched"}, All: true}
	listed := []string{"patched:2+test", "patched+test"}
	if !all.Runs(listed, "patched:2+test") || !all.Runs(listed, "patched+test") || all.Runs(listed, "baseline+test") {
		t.Errorf("Runs with all: %v", all.Plan(listed))
	}
	if only := (Request{Want: []string{"baseline"}, All: true}); only.Runs(listed, "patched+test") {
		t.Error("patched+test runs although the series does not")
	}

	series := fstest.MapFS{"series": {Data: []byte("a.patch\n")}, "a.patch": {},
		"test/series": {Data: []byte("t.patch\n")}, "test/t.patch": {Data: []byte("x")}}
	p, err := readTestSeries(series)
	if err != nil || len(p) != 1 || p[0].Name != "test/t.patch" || string(p[0].Data) != "x" {
		t.Errorf("readTestSeries = %+v, %v", p, err)
	}
	if _, err := readTestSeries(fstest.MapFS{"series": {Data: []byte("a.patch\n")}, "a.patch": {}}); err == nil || !strings.Contains(err.Error(), "test/series") {
		t.Errorf("missing test series: %v", err)
	}
}

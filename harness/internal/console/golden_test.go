package console

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

func scanFile(t *testing.T, path string) []Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []Event
	if err := Scan(f, func(e Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatalf("Scan(%s): %v", path, err)
	}
	return evs
}

func encodeJSONL(t *testing.T, evs []Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func logFiles(t *testing.T) []string {
	t.Helper()
	logs, err := filepath.Glob("testdata/*.log")
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) < 10 {
		t.Fatalf("expected the testdata corpus, found %d logs", len(logs))
	}
	return logs
}

// TestGolden compares the events of each testdata/*.log with the JSONL in
// testdata/*.golden. Run `go test -update` after a deliberate change and
// review the diff of the .golden files.
func TestGolden(t *testing.T) {
	for _, log := range logFiles(t) {
		name := strings.TrimSuffix(filepath.Base(log), ".log")
		t.Run(name, func(t *testing.T) {
			got := encodeJSONL(t, scanFile(t, log))
			golden := strings.TrimSuffix(log, ".log") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if bytes.Equal(got, want) {
				return
			}
			gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
			for i := 0; i < max(len(gl), len(wl)); i++ {
				var g, w string
				if i < len(gl) {
					g = gl[i]
				}
				if i < len(wl) {
					w = wl[i]
				}
				if g != w {
					t.Fatalf("%s: event %d differs:\n got: %s\nwant: %s", golden, i+1, g, w)
				}
			}
		})
	}
}

// TestLogSummaries pins what matters in each log independently of the
// golden files, so a careless -update cannot hide a regression there.
func TestLogSummaries(t *testing.T) {
	want := map[string]map[Kind]int{
		"negatives":                {},
		"oom-6.12":                 {OOMInvoked: 2, OOMKill: 3, OOMReaped: 2, OOMReapFailed: 1, HandedOver: 1},
		"oom-4.19":                 {OOMInvoked: 2, OOMKill: 6, OOMReaped: 2, OOMReapFailed: 1, HungTask: 1},
		"oom-4.9-syslog":           {OOMInvoked: 1, OOMKill: 2, OOMReaped: 1},
		"softlockup-6.12":          {SoftLockup: 3, RCUStall: 1, Panic: 1},
		"hardlockup-6.12":          {HardLockup: 1, Panic: 1},
		"hardlockup-buddy-6.6":     {HardLockup: 1},
		"lockup-4.9":               {SoftLockup: 1, HardLockup: 1, Panic: 1},
		"rcu-stall-4.14":           {RCUStall: 5, RCUKthreadStarved: 1},
		"rcu-stall-6.12":           {RCUStall: 5, RCUKthreadStarved: 1},
		"hung-task-5.10":           {HungTask: 3, Panic: 1},
		"syzkaller-6.x":            {Warning: 3, Panic: 1, Bug: 8, WorkqueueLockup: 1, RCUStall: 1},
		"workqueue-lockup-6.12":    {WorkqueueLockup: 3, StressStart: 1},
		"rcu-kthread-starved-6.12": {RCUStall: 1, RCUKthreadStarved: 2, StressStart: 1},
		"bug-4.14":                 {Bug: 4, Warning: 1, Panic: 1},
		"lkml-pastes":              {HungTask: 1, RCUStall: 3, SoftLockup: 1, HardLockup: 1, Panic: 1, Warning: 1, OOMKill: 1, Bug: 1},
		"formats":                  {SoftLockup: 4, HungTask: 6, Panic: 4, OOMKill: 3, OOMReaped: 1, Bug: 1, HardLockup: 1},
		// Issue #14 part 5: the newest kernels' forms and garbled prefixes.
		"hung-task-blocker-6.17":  {HungTask: 8, HungTaskBlocker: 8, Panic: 1},
		"hung-task-io-7.0":        {HungTask: 2, HungTaskBlocker: 1},
		"warning-6.19":            {Warning: 4, Panic: 1},
		"hardlockup-powerpc-6.12": {HardLockup: 2, Panic: 1},
		"oom-allocating-6.12":     {OOMInvoked: 2, OOMKill: 2, OOMReaped: 1},
		"garbled-6.12":            {SoftLockup: 1, RCUStall: 1, HungTask: 2, OOMReaped: 1, OOMKill: 1, Panic: 1},
	}
	seen := map[string]bool{}
	for _, log := range logFiles(t) {
		name := strings.TrimSuffix(filepath.Base(log), ".log")
		seen[name] = true
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no summary in TestLogSummaries", log)
			continue
		}
		got := map[Kind]int{}
		for _, e := range scanFile(t, log) {
			got[e.Kind]++
		}
		for _, k := range AllKinds {
			if got[k] != w[k] {
				t.Errorf("%s: %d %s events, want %d", name, got[k], k, w[k])
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("testdata/%s.log is missing", name)
		}
	}
}

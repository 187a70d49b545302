package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"oomlab/harness/internal/results"
)

// KCIDB I/O schema v5 (kernelci/kcidb-io, kcidb_io/schema/v05_03.py): the
// objects and properties oomlab fills. testdata/kcidb/ holds the JSON
// Schema of this subset the tests validate the output against.
const (
	kcidbMajor = 5
	kcidbMinor = 3
)

// DefaultKCIDBOrigin names oomlab as the CI system in ids and "origin".
const DefaultKCIDBOrigin = "oomlab"

// kcidbOriginRE is the schema's origin pattern: checked up front, because
// an id that does not start with a valid origin is rejected whole.
var kcidbOriginRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// KCIDBOptions are the choices of the submitter, not facts of the run.
type KCIDBOptions struct {
	Origin string // the CI system's name; DefaultKCIDBOrigin when ""
	// LogURLBase, when set, is where the run directory is published:
	// log_url is it plus the console log's name. The schema wants an
	// absolute URI, so without it there is no log_url (misc names the file).
	LogURLBase string
}

type kcidbReport struct {
	Version   kcidbVersion    `json:"version"`
	Checkouts []kcidbCheckout `json:"checkouts"`
	Builds    []kcidbBuild    `json:"builds"`
	Tests     []kcidbTest     `json:"tests"`
}

type kcidbVersion struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

type kcidbCheckout struct {
	ID            string `json:"id"`
	Origin        string `json:"origin"`
	TreeName      string `json:"tree_name,omitempty"`
	GitCommitName string `json:"git_commit_name,omitempty"`
	// PatchsetHash is "" for "no patches", which the schema tells from
	// "not known" (the property left out): hence a pointer.
	PatchsetHash *string        `json:"patchset_hash,omitempty"`
	Comment      string         `json:"comment,omitempty"`
	Valid        bool           `json:"valid"`
	Misc         map[string]any `json:"misc,omitempty"`
}

type kcidbBuild struct {
	ID           string         `json:"id"`
	Origin       string         `json:"origin"`
	CheckoutID   string         `json:"checkout_id"`
	Comment      string         `json:"comment,omitempty"`
	Architecture string         `json:"architecture"`
	Compiler     string         `json:"compiler,omitempty"`
	ConfigName   string         `json:"config_name"`
	Status       string         `json:"status"`
	Misc         map[string]any `json:"misc,omitempty"`
}

type kcidbTest struct {
	ID          string            `json:"id"`
	Origin      string            `json:"origin"`
	BuildID     string            `json:"build_id"`
	Path        string            `json:"path"`
	Comment     string            `json:"comment,omitempty"`
	Status      string            `json:"status,omitempty"`
	Number      *kcidbNumber      `json:"number,omitempty"`
	StartTime   string            `json:"start_time,omitempty"`
	Duration    float64           `json:"duration,omitempty"`
	LogURL      string            `json:"log_url,omitempty"`
	LogExcerpt  string            `json:"log_excerpt,omitempty"`
	Environment *kcidbEnvironment `json:"environment,omitempty"`
	Misc        map[string]any    `json:"misc,omitempty"`
}

type kcidbNumber struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	Prefix string  `json:"prefix,omitempty"`
}

type kcidbEnvironment struct {
	Comment string         `json:"comment,omitempty"`
	Misc    map[string]any `json:"misc,omitempty"`
}

// KCIDB writes the run as one KCIDB v5 submission: a checkout per kernel
// source and patchset, a build per variant kernel, a test per guest run
// (and per round, when there are several) and a test per figure of each
// guest run that ran. Ids are made from the run's own identities (run id,
// cache key, source), so the same run gives the same ids every time and
// a resubmission updates rather than duplicates.
func KCIDB(w io.Writer, r *results.Run, o KCIDBOptions) error {
	rep, err := kcidbOf(r, o)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "<= 1000" in an excerpt stays readable
	return enc.Encode(rep)
}

func kcidbOf(r *results.Run, o KCIDBOptions) (*kcidbReport, error) {
	if o.Origin == "" {
		o.Origin = DefaultKCIDBOrigin
	}
	if !kcidbOriginRE.MatchString(o.Origin) {
		return nil, fmt.Errorf("kcidb origin %q: want lower-case letters, digits and _ only", o.Origin)
	}
	if o.LogURLBase != "" {
		u, err := url.Parse(o.LogURLBase)
		if err != nil || !u.IsAbs() {
			return nil, fmt.Errorf("kcidb log URL base %q: want an absolute URL (https://host/path)", o.LogURLBase)
		}
		o.LogURLBase = strings.TrimRight(o.LogURLBase, "/")
	}
	rep := &kcidbReport{
		Version:   kcidbVersion{kcidbMajor, kcidbMinor},
		Checkouts: []kcidbCheckout{},
		Builds:    []kcidbBuild{},
		Tests:     []kcidbTest{},
	}
	builds := map[string]string{} // variant -> build id
	seen := map[string]bool{}     // checkout ids written
	for _, k := range r.Kernels {
		c := kcidbCheckoutOf(o.Origin, k)
		if !seen[c.ID] {
			seen[c.ID] = true
			rep.Checkouts = append(rep.Checkouts, c)
		}
		b := kcidbBuildOf(o.Origin, c.ID, k)
		builds[k.Variant] = b.ID
		rep.Builds = append(rep.Builds, b)
	}
	for _, res := range r.Results {
		id, ok := builds[res.Variant]
		if !ok {
			// A guest run whose kernel the record does not list (a
			// partial record): the schema allows a test whose build is
			// not (yet) submitted.
			id = o.Origin + ":build-" + shortSum(r.ID, res.Variant)
		}
		rep.Tests = append(rep.Tests, kcidbTests(r, res, id, o)...)
	}
	return rep, nil
}

// kcidbStatus maps the typed verdicts onto the schema's statuses; a guest
// run without a verdict yet has none.
func kcidbStatus(v results.Verdict) string {
	switch v {
	case results.Pass:
		return "PASS"
	case results.Fail:
		return "FAIL"
	case results.Error:
		return "ERROR"
	case results.Skip:
		return "SKIP"
	}
	return ""
}

// kcidbTime is the schema's date-time; the zero time is "not known".
func kcidbTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// kcidbPathSegment makes a name one segment of a dotted test path, whose
// pattern allows only [a-zA-Z0-9_-]: a sweep case "s[a=1,b=2]" becomes
// "s_a_1_b_2_". The id and misc keep the name as it is.
func kcidbPathSegment(name string) string {
	if name == "" {
		return "_"
	}
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			return c
		}
		return '_'
	}, name)
}

// kcidbText keeps a free-text property within the schema: no NUL, and at
// most maxLen bytes (log_excerpt's maxLength counts characters, which are
// never more than bytes), cut before a rune the limit would split.
func kcidbText(s string, maxLen int) string {
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= maxLen {
		return s
	}
	s = s[:maxLen]
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

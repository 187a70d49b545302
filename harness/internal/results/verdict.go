package results

import "fmt"

// Verdict is how a guest run, or a whole run, ended; the statuses of KTAP
// and KUnit. The zero value is "no verdict yet" and is omitted from JSON
// where the field is optional.
type Verdict uint8

// Verdicts, from best to worst (Worst relies on the order).
const (
	None  Verdict = iota
	Skip          // not run
	Pass          // every expectation held
	Fail          // an expectation did not hold
	Error         // the run could not complete (infrastructure)
)

var verdictNames = [...]string{None: "", Skip: "skip", Pass: "pass", Fail: "fail", Error: "error"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// ParseVerdict reads a verdict name.
func ParseVerdict(s string) (Verdict, error) {
	for v, n := range verdictNames {
		if n == s {
			return Verdict(v), nil
		}
	}
	return None, fmt.Errorf("verdict %q: want pass, fail, error or skip", s)
}

// MarshalText writes the name ("pass").
func (v Verdict) MarshalText() ([]byte, error) {
	if int(v) >= len(verdictNames) {
		return nil, fmt.Errorf("unknown verdict %d", uint8(v))
	}
	return []byte(v.String()), nil
}

// UnmarshalText reads the name.
func (v *Verdict) UnmarshalText(b []byte) error {
	p, err := ParseVerdict(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// Worst is the worse of two verdicts: error over fail over pass over skip.
func (v Verdict) Worst(w Verdict) Verdict { return max(v, w) }

package results

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Shard says which part of a suite a run ran ('oomlab run --shard i/n').
// It carries the whole suite's unit list, not only the shard's, so that
// 'oomlab merge' can tell which shards belong together, which are missing
// and in what order the merged guest runs go without anything but the
// shards' run directories.
type Shard struct {
	Index int `json:"index"` // 1..Count
	Count int `json:"count"`
	// Units are every guest run of the whole suite, in the order an
	// unsharded run runs them, each with the shard it belongs to.
	Units []Unit `json:"units"`
	// UnitsHash is UnitsHash(Units): equal hashes, same suite.
	UnitsHash string `json:"units_hash"`
	// Variants are the kernels the whole suite runs, in the order an
	// unsharded run lists them (a shard builds only those its units run).
	Variants []string `json:"variants"`
}

// Unit is one guest run of a suite: a scenario on a variant, one repeat.
// It is the smallest thing a shard can run. The rounds of a scenario share
// one boot (the setup runs once, later rounds meet what earlier ones left
// in the guest), so they cannot be split over machines.
type Unit struct {
	Scenario string `json:"scenario"`
	Variant  string `json:"variant"`
	Repeat   int    `json:"repeat"`
	Shard    int    `json:"shard"` // 1..Count
}

func (u Unit) String() string { return fmt.Sprintf("%s/%s#%d", u.Scenario, u.Variant, u.Repeat) }

// Key is what identifies a unit's guest run among the results.
func (u Unit) Key() UnitKey { return UnitKey{u.Scenario, u.Variant, u.Repeat} }

// UnitKey identifies a guest run: scenario, variant, repeat.
type UnitKey struct {
	Scenario string
	Variant  string
	Repeat   int
}

// Key is the unit a result is the guest run of.
func (r *Result) Key() UnitKey { return UnitKey{r.Scenario, r.Variant, r.Repeat} }

// UnitsHash is the SHA-256 of the units (with their shard assignment) and
// the variants, as JSON: two shards with equal hashes were planned from
// the same scenarios, flags and shard count.
func UnitsHash(units []Unit, variants []string) string {
	b, _ := json.Marshal(struct {
		U []Unit   `json:"u"`
		V []string `json:"v"`
	}{units, variants})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ShardRun is one shard of a merged run ('oomlab merge'): which run it
// was, where it was read from and the machine it ran on.
type ShardRun struct {
	Index    int        `json:"index"`
	Count    int        `json:"count"`
	ID       string     `json:"run_id"`
	Dir      string     `json:"dir"` // as given to merge
	Host     Host       `json:"host"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Complete bool       `json:"complete"`
}

package suite

import (
	"fmt"
	"strconv"
)

// Budget bounds the guests a suite runs side by side. The zero Budget runs
// one guest at a time, as oomlab always did.
//
// Whatever the budget, a guest starts only when it fits beside those
// running, in plan order (the next guest waits rather than let a later
// one overtake it: the plan interleaves the variants of each repeat so that
// they meet the same host, and starting them in that order keeps them
// side by side); a guest that does not fit even on an empty host runs
// alone; and a timing-sensitive scenario (Scenario.TimingSensitive) runs
// alone, with nothing else running.
type Budget struct {
	Guests int // at most this many at once (< 1: one)
	CPUs   int // vCPU slots: the running guests' vCPUs add up to at most this (0: no bound)
	MemMB  int // the running guests' memory_mb + QEMUOverheadMB add up to at most this (0: no bound)
	Auto   bool
}

const (
	// QEMUOverheadMB is what a QEMU process takes beside its guest's
	// memory_mb: its own code and heap, TCG's translation cache and the
	// page tables. Measured (TCG, 2 vCPUs, smoke, whose memhog touches
	// all of the guest's 256 MB): 372-375 MB of RSS, 119 MB above
	// memory_mb; 150 MB leaves room for a larger translation cache.
	QEMUOverheadMB = 150
	// CPUOvercommit is how many vCPUs a host core takes in the budget of
	// guests that may share the host. An idle TCG vCPU halts and its
	// thread sleeps, so a functional guest's vCPUs cost little: measured
	// (TCG, a 2-vCPU guest, QEMU's utime+stime every 0.5 s), idle after
	// boot 7-8% of one host core for both vCPUs, the boot 35-60%, smoke's
	// stress phase up to 45%. What overcommit must not do is keep a busy
	// vCPU off a core long enough for the guest's own detectors (soft
	// lockup after 20 s, RCU stall after 21 s, the host watchdog after
	// its time) to call it a lockup: at two vCPUs a core a vCPU that
	// wants a core gets at least half of one even when every other vCPU
	// is busy too (a functional guest with every vCPU busy, a fork storm,
	// is still judged on counts, not on time).
	CPUOvercommit = 2
	// memShare is the part of MemAvailable the guests may take: the rest
	// is for the host, which is shared (other users, kernel builds), and
	// for its page cache.
	memShareNum, memShareDen = 3, 4
	// maxJobs bounds --jobs N: more guests than that is a typo.
	maxJobs = 64
)

// AutoBudget is --jobs auto on a host with cores CPUs and memAvailableMB
// of MemAvailable: vCPU slots CPUOvercommit a core, memory three quarters
// of what is available, and as many guests as the slots hold.
func AutoBudget(cores, memAvailableMB int) Budget {
	cores = max(cores, 1)
	slots := cores * CPUOvercommit
	return Budget{Guests: slots, CPUs: slots, MemMB: max(memAvailableMB, 0) * memShareNum / memShareDen, Auto: true}
}

// FixedBudget is --jobs n: at most n guests, within the same CPU and
// memory bounds as auto (n above them is a cap that is never reached, not
// an order to overcommit further: a starved guest reports lockups that
// are the host's, not its kernel's).
func FixedBudget(n, cores, memAvailableMB int) Budget {
	b := AutoBudget(cores, memAvailableMB)
	b.Guests, b.Auto = n, false
	return b
}

// ParseJobs reads --jobs: a number of guests (1..64) or auto.
func ParseJobs(s string) (n int, auto bool, err error) {
	if s == "auto" {
		return 0, true, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil || n < 1 || n > maxJobs {
		return 0, false, fmt.Errorf("--jobs %q: want a number of guests run at once, 1..%d, or auto (from the host's cores and free memory)", s, maxJobs)
	}
	return n, false, nil
}

func (b Budget) String() string {
	if b.Guests <= 1 {
		return "one guest at a time"
	}
	return fmt.Sprintf("up to %d guests at once, %d vCPUs (%d a core), %d MB (3/4 of MemAvailable, QEMU %d MB each); timing-sensitive scenarios alone", b.Guests, b.CPUs, CPUOvercommit, b.MemMB, QEMUOverheadMB)
}

// shape is what a guest run takes of the budget.
type shape struct {
	cpus, memMB int
	alone       bool // timing-sensitive: nothing else may run beside it
}

func shapeOf(g guestRun) shape {
	return shape{g.sc.Guest.CPUs, g.sc.Guest.MemoryMB, g.sc.TimingSensitive}
}

// fits says whether next may start beside the running guests.
func (b Budget) fits(running []shape, next shape) bool {
	if len(running) == 0 {
		return true // too big for the budget: it runs alone, as it would serially
	}
	if next.alone || len(running)+1 > max(b.Guests, 1) {
		return false
	}
	cpus, mem := next.cpus, next.memMB+QEMUOverheadMB
	for _, r := range running {
		if r.alone {
			return false
		}
		cpus += r.cpus
		mem += r.memMB + QEMUOverheadMB
	}
	return (b.CPUs == 0 || cpus <= b.CPUs) && (b.MemMB == 0 || mem <= b.MemMB)
}

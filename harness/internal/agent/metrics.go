package agent

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"oomlab/harness/internal/protocol"
)

// Monotonic returns CLOCK_MONOTONIC in seconds. On the guest this is the
// clock printk timestamps are (close to), so samples can be lined up with
// kernel log lines such as the OOM report.
func Monotonic() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// collector reads one Sample from a proc filesystem.
type collector struct {
	fs       procfs.FS
	procRoot string
	seq      int
}

func newCollector(procRoot string) (*collector, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, err
	}
	return &collector{fs: fs, procRoot: procRoot}, nil
}

func (c *collector) sample() protocol.Sample {
	s := protocol.Sample{Seq: c.seq, Mono: Monotonic()}
	c.seq++
	fail := func(what string, err error) {
		s.Errors = append(s.Errors, what+": "+err.Error())
	}
	val := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p
	}

	if mi, err := c.fs.Meminfo(); err != nil {
		fail("meminfo", err)
	} else {
		s.MemTotalKB = val(mi.MemTotal)
		s.MemFreeKB = val(mi.MemFree)
		s.MemAvailableKB = val(mi.MemAvailable)
		s.AnonPagesKB = val(mi.AnonPages)
		s.ShmemKB = val(mi.Shmem)
		s.SwapFreeKB = val(mi.SwapFree)
	}

	// procfs has no /proc/vmstat parser; the format is "name value\n".
	if data, err := os.ReadFile(c.procRoot + "/vmstat"); err != nil {
		fail("vmstat", err)
	} else {
		vm := parseVMStat(data)
		_, s.VMEvents = vm["pgfault"]
		s.OOMKill = vm["oom_kill"]
		s.PgscanKswapd = vm["pgscan_kswapd"]
		s.PgscanDirect = vm["pgscan_direct"]
		s.Pgscan = s.PgscanKswapd + s.PgscanDirect + vm["pgscan_khugepaged"] + vm["pgscan_proactive"]
		s.PgstealKswapd = vm["pgsteal_kswapd"]
		s.PgstealDirect = vm["pgsteal_direct"]
		s.Pgsteal = s.PgstealKswapd + s.PgstealDirect + vm["pgsteal_khugepaged"] + vm["pgsteal_proactive"]
		s.Pgmajfault = vm["pgmajfault"]
		for k, v := range vm {
			if strings.HasPrefix(k, "allocstall_") {
				s.AllocStall += v
			}
		}
	}

	// PSI is optional in the guest kernel config; absence is not an error.
	if psi, err := c.fs.PSIStatsForResource("memory"); err == nil {
		s.PSI = true
		if psi.Some != nil {
			s.MemSomeAvg10, s.MemSomeTotalUS = psi.Some.Avg10, psi.Some.Total
		}
		if psi.Full != nil {
			s.MemFullAvg10, s.MemFullTotalUS = psi.Full.Avg10, psi.Full.Total
		}
	}

	if la, err := c.fs.LoadAvg(); err != nil {
		fail("loadavg", err)
	} else {
		s.Load1, s.Load5, s.Load15 = la.Load1, la.Load5, la.Load15
	}
	if st, err := c.fs.Stat(); err != nil {
		fail("stat", err)
	} else {
		s.ProcsRunning, s.ProcsBlocked = st.ProcessesRunning, st.ProcessesBlocked
	}
	return s
}

// parseVMStat parses /proc/vmstat.
func parseVMStat(data []byte) map[string]uint64 {
	m := make(map[string]uint64, 200)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[name] = n
		}
	}
	return m
}

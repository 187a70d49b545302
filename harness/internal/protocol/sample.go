package protocol

// Sample is one line of output of the `metrics` builtin. The agent encodes
// and the host (package guest) decodes this very type, so the wire format
// has a single definition.
//
// Memory values are in kB as reported by /proc/meminfo; vmstat values are
// raw cumulative counters (pages or events) since boot; PSI totals are in
// microseconds.
type Sample struct {
	Seq  int     `json:"seq"`
	Mono float64 `json:"mono"` // CLOCK_MONOTONIC seconds, comparable with printk timestamps

	MemTotalKB     uint64 `json:"mem_total_kb"`
	MemFreeKB      uint64 `json:"mem_free_kb"`
	MemAvailableKB uint64 `json:"mem_available_kb"`
	AnonPagesKB    uint64 `json:"anon_pages_kb"`
	ShmemKB        uint64 `json:"shmem_kb"`
	SwapFreeKB     uint64 `json:"swap_free_kb"`

	// VMEvents is false when /proc/vmstat has no event counters (kernel
	// built without CONFIG_VM_EVENT_COUNTERS): OOMKill, Pgscan*, Pgsteal*,
	// Pgmajfault and AllocStall are then always 0.
	VMEvents      bool   `json:"vm_events"`
	OOMKill       uint64 `json:"oom_kill"`
	PgscanKswapd  uint64 `json:"pgscan_kswapd"`
	PgscanDirect  uint64 `json:"pgscan_direct"`
	Pgscan        uint64 `json:"pgscan"` // kswapd + direct + khugepaged + proactive
	PgstealKswapd uint64 `json:"pgsteal_kswapd"`
	PgstealDirect uint64 `json:"pgsteal_direct"`
	Pgsteal       uint64 `json:"pgsteal"` // kswapd + direct + khugepaged + proactive
	Pgmajfault    uint64 `json:"pgmajfault"`
	AllocStall    uint64 `json:"allocstall"` // sum over zones

	// PSI is false when /proc/pressure/memory is unavailable (CONFIG_PSI=n
	// or psi=0); the MemSome*/MemFull* fields are then zero.
	PSI            bool    `json:"psi"`
	MemSomeAvg10   float64 `json:"mem_some_avg10"`
	MemSomeTotalUS uint64  `json:"mem_some_total_us"`
	MemFullAvg10   float64 `json:"mem_full_avg10"`
	MemFullTotalUS uint64  `json:"mem_full_total_us"`

	Load1        float64 `json:"load1"`
	Load5        float64 `json:"load5"`
	Load15       float64 `json:"load15"`
	ProcsRunning uint64  `json:"procs_running"`
	ProcsBlocked uint64  `json:"procs_blocked"`

	// Errors lists sources that could not be read for this sample.
	Errors []string `json:"errors,omitempty"`
}

// Uptime is the output of the `uptime` builtin.
type Uptime struct {
	UptimeS float64 `json:"uptime_s"` // /proc/uptime
	MonoS   float64 `json:"mono_s"`   // CLOCK_MONOTONIC
	Load1   float64 `json:"load1"`
	Load5   float64 `json:"load5"`
	Load15  float64 `json:"load15"`
}

// ProcInfo is one element of the `ps` builtin's JSON array.
type ProcInfo struct {
	PID         int    `json:"pid"`
	PPID        int    `json:"ppid"`
	Comm        string `json:"comm"`
	State       string `json:"state"`
	Policy      string `json:"policy"` // other|fifo|rr|batch|idle|deadline, see PolicyName
	RTPrio      uint   `json:"rt_prio"`
	Nice        int    `json:"nice"`
	OOMScoreAdj int    `json:"oom_score_adj"`
	RSSKB       int    `json:"rss_kb"`
	Threads     int    `json:"threads"`
	Cmdline     string `json:"cmdline,omitempty"`
}

// KernelThread says whether p is kthreadd (PID 2) or one of its children.
func (p ProcInfo) KernelThread() bool { return p.PID == 2 || p.PPID == 2 }

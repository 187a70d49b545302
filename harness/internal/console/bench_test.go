package console

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
)

// benchNoise is what a QEMU serial console mostly carries between events.
var benchNoise = []string{
	"EXT4-fs (vda): mounted filesystem 3c4f8a2e-0b1d-4d5e-9f10-2a3b4c5d6e7f r/w with ordered data mode. Quota mode: none.",
	"virtio_net virtio1 enp0s3: renamed from eth0",
	"random: crng init done",
	"clocksource: tsc: mask: 0xffffffffffffffff max_cycles: 0x2b3e459bf4c, max_idle_ns: 440795289890 ns",
	"pci 0000:00:02.0: [1234:1111] type 00 class 0x030000 conventional PCI endpoint",
	"audit: type=1400 audit(1700000000.123:42): apparmor=\"STATUS\" operation=\"profile_load\" name=\"memhog\" pid=81 comm=\"apparmor_parser\"",
	"Freeing unused kernel image (initmem) memory: 2680K",
	"systemd[1]: Started session-1.scope - Session 1 of User root.",
	" __alloc_pages_slowpath.constprop.0+0xa5d/0xd30",
	" handle_mm_fault+0x10a/0x300",
	"RAX: 000000003b3f6000 RBX: 0000000040000000 RCX: 00007f3a1c2b1000",
	"Node 0 DMA32 free:5192kB boost:0kB min:5460kB low:6824kB high:8188kB reserved_highatomic:0KB active_anon:8kB",
	"[     78]     0    78   262944   245622   245620        2         0  2019328        0             0 memhog",
	"sched: RT throttling activated",
	"perf: interrupt took too long (2503 > 2500), lowering kernel.perf_event_max_sample_rate to 79800",
}

var (
	benchOnce sync.Once
	benchLog  []byte
	benchEvts int
)

// benchData builds a ~50 MB console log: timestamped, with caller ids,
// mostly noise, and every few thousand lines a full OOM report or a lockup
// taken from testdata (so the regexp path is exercised too).
func benchData(b *testing.B) []byte {
	benchOnce.Do(func() {
		oom, err := os.ReadFile("testdata/oom-6.12.log")
		if err != nil {
			b.Fatal(err)
		}
		lockup, err := os.ReadFile("testdata/softlockup-6.12.log")
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var buf bytes.Buffer
		buf.Grow(52 << 20)
		t := 0.0
		for i := 0; buf.Len() < 50<<20; i++ {
			t += rng.Float64() / 100
			switch {
			case i%5000 == 4999:
				buf.Write(oom)
			case i%20000 == 19999:
				buf.Write(lockup)
			case i%7 == 3:
				fmt.Fprintf(&buf, "oomlab: memhog: step %d: %d MiB resident\n", i, i%2048)
			default:
				fmt.Fprintf(&buf, "[%12.6f][%6s] %s\n", t, fmt.Sprintf("T%d", 1+rng.IntN(200)), benchNoise[rng.IntN(len(benchNoise))])
			}
		}
		benchLog = buf.Bytes()
		_ = Scan(bytes.NewReader(benchLog), func(Event) error { benchEvts++; return nil })
	})
	return benchLog
}

func BenchmarkScan(b *testing.B) {
	data := benchData(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := Scan(bytes.NewReader(data), func(Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchEvts || n == 0 {
			b.Fatalf("%d events, want %d", n, benchEvts)
		}
	}
	b.ReportMetric(float64(benchEvts), "events/op")
}

// BenchmarkFeedNoise measures the prefilter alone: a line without needles.
func BenchmarkFeedNoise(b *testing.B) {
	line := []byte("[   12.345678][  T123] " + benchNoise[0])
	p := NewParser()
	b.SetBytes(int64(len(line) + 1))
	for b.Loop() {
		p.Feed(line)
	}
}

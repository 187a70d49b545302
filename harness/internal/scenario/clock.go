package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"oomlab/harness/internal/guest"
)

// A stress phase must not start before the guest's clocksource has
// settled. Where the TSC frequency comes neither from CPUID nor from a
// hypervisor (TCG), x86 boots on "tsc-early" and registers "tsc" once
// tsc_refine_calibration_work() (arch/x86/kernel/tsc.c) has its second
// sample, a second after init_tsc_clocksource() (a device_initcall):
// about 1.5 s of kernel time; timekeeping_notify() then switches under
// stop_machine(). The microvm's agent answers at 0.6 s, so the switch
// fell into the stress phase: with a CPU spinning with preemption off
// (LKDTM SOFTLOCKUP) every other CPU waited in multi_cpu_stop() with
// interrupts off, soft lockups on all CPUs, no hung-task check and no
// agent. On KVM (kvm-clock) and on kernels whose TSC is unstable the
// clocksource is never tsc-early: no wait.
const (
	clocksourcePath   = "/sys/devices/system/clocksource/clocksource0/current_clocksource"
	transitionalClock = "tsc-early"
	clockPoll         = 50 * time.Millisecond
)

// clockSettleMax bounds the wait: the switch comes a second after the
// initcall, later only on a loaded host (a variable for the tests).
var clockSettleMax = 10 * time.Second

// settleClock waits while the guest's clocksource is tsc-early and says
// how long it waited. A guest without the file (another architecture)
// has nothing to wait for; a clocksource still transitional after
// clockSettleMax is an error (the run would measure a stop_machine()).
func settleClock(ctx context.Context, sh Shell) (time.Duration, error) {
	start := time.Now()
	for {
		out, err := sh.Output(ctx, "cat "+clocksourcePath)
		var refused *guest.CommandError
		if errors.As(err, &refused) {
			return 0, nil
		}
		if err != nil {
			return time.Since(start), fmt.Errorf("reading the guest's clocksource: %w", err)
		}
		cur := strings.TrimSpace(string(out))
		if cur != transitionalClock {
			return time.Since(start), nil
		}
		if time.Since(start) >= clockSettleMax {
			return time.Since(start), fmt.Errorf("the guest's clocksource is still %s %s after the agent answered: the switch to tsc (under stop_machine) would fall into the stress phase", cur, clockSettleMax)
		}
		pause(ctx, clockPoll)
		if ctx.Err() != nil {
			return time.Since(start), ctx.Err()
		}
	}
}

package scenario

import (
	"context"
	"io"
	"time"

	"oomlab/harness/internal/guest"
	"oomlab/harness/internal/protocol"
	"oomlab/harness/internal/vm"
)

// Machine is what the runner needs of a booted guest machine, in the way
// of syzkaller's vmimpl.Instance: when it ends, why, and how to end it.
// *vm.VM is one; the runner's tests use a fake.
//
// The console does not go through the interface: whoever starts the
// machine hands it the callback that gets each console line
// (vm.Config.OnLine), which feeds the run's event log and with it the
// stop_when condition. A fake machine calls the same callback.
type Machine interface {
	// Done is closed when the machine has exited and its console has been
	// read to the end.
	Done() <-chan struct{}
	// ExitError is, after Done, why the machine exited; nil before Done and
	// after a clean exit.
	ExitError() error
	// Stop ends the machine, giving it grace to go by itself; it returns
	// with the machine gone.
	Stop(grace time.Duration)
	// Sysrq sends a magic sysrq key over the serial line (BREAK + key):
	// the host watchdog's way to get backtraces out of a hung guest.
	Sysrq(ctx context.Context, key byte) error
	// InjectNMI sends an NMI to every vCPU (QMP inject-nmi).
	InjectNMI(ctx context.Context) error
}

// Shell is what the runner needs of the guest agent: *guest.Client is
// one; the runner's tests use a fake. Every call is bounded by its
// context.
type Shell interface {
	// Output runs a command (setup steps, actions, probes) and returns its
	// stdout; a non-zero exit or a signal is a *guest.CommandError.
	Output(ctx context.Context, cmd string) ([]byte, error)
	// StartSpawn starts a stressor with its process attributes; the Job
	// ends with ctx.
	StartSpawn(ctx context.Context, s protocol.Spawn, cmdline string, stdout, stderr io.Writer) (guest.Job, error)
	// Metrics streams samples to fn until ctx ends.
	Metrics(ctx context.Context, interval time.Duration, fn func(protocol.Sample)) error
	// Kmsg writes one line into the guest's kernel log: the stress-start
	// marker.
	Kmsg(ctx context.Context, text string) error
	// Census counts the guest's user-space processes by name.
	Census(ctx context.Context) (map[string]int, error)
	// Ping says whether the agent still runs commands, within timeout.
	Ping(ctx context.Context, timeout time.Duration) error
	// Poweroff asks the agent to power the guest off; it returns on the
	// agent's acknowledgement, before the machine exits.
	Poweroff(ctx context.Context) error
	// Close drops the connection; the agent kills what still runs in it.
	Close() error
}

var (
	_ Machine = (*vm.VM)(nil)
	_ Shell   = (*guest.Client)(nil)
)

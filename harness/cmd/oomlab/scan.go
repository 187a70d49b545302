package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"oomlab/harness/internal/console"
)

func newScanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scan [FILE...|-]",
		Short: "parse kernel logs (console, dmesg, LKML pastes) and print events as JSON lines",
		Long: "scan reads kernel logs from files or stdin and prints one JSON object per event:\n" +
			`{"kind":..., "line":N, "time":seconds-or-null, "cpu":..., "pid":..., "comm":..., "text":...}` + "\n" +
			"Kinds: oom_invoked oom_kill oom_reaped oom_reap_failed handed_over soft_lockup hard_lockup rcu_stall hung_task hung_task_blocker workqueue_lockup rcu_kthread_starved panic bug warning,\n" +
			"and oomlab's own markers task_exit and stress_start.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"-"}
			}
			out := bufio.NewWriterSize(os.Stdout, 64<<10)
			defer out.Flush()
			enc := json.NewEncoder(out)
			for _, name := range args {
				if err := scanOne(name, enc); err != nil {
					return &exitError{2, err}
				}
			}
			return nil
		},
	}
}

func scanOne(name string, enc *json.Encoder) error {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("scan: %v", err)
		}
		defer f.Close()
		r = f
	}
	err := console.Scan(r, func(e console.Event) error { return enc.Encode(e) })
	if err != nil {
		return fmt.Errorf("scan %s: %v", name, err)
	}
	return nil
}

#!/usr/bin/env bash
# make soak: the lab's false-finding and missed-finding rates (issue 14).
# Not in CI: about an hour on 2 cores under TCG.
#
#   1. SOAK_BOOTS (100) idle boots per kernel: every one must end PASS with
#      findings == 0 (no lockup, warning, BUG, OOM or watchdog finding on a
#      guest that does nothing).
#   2. SOAK_PROVOKE (10) runs per kernel of each LKDTM detector scenario
#      (detector-selftest: soft lockup, RCU stall, hung task;
#      detector-hardlockup: hard lockup): every provocation detected.
#
#   make soak [SOAK_VARIANTS=baseline,patched] [SOAK_BOOTS=100] [SOAK_PROVOKE=10]
#             [SOAK_JOBS=auto] [SOAK_IDLE_RUN=results/<id>] [SOAK_DETECT_RUN=results/<id>]
#
# Writes results/soak-<date>.md with the figures per kernel and the run
# directories behind them. Exit 0 when the soak found nothing false and
# missed nothing, 1 otherwise, 2 when a run broke.
set -euo pipefail
cd "$(dirname "$0")/.."

OOMLAB=${OOMLAB:-bin/oomlab}
VARIANTS=${SOAK_VARIANTS:-baseline,patched}
BOOTS=${SOAK_BOOTS:-100}
PROVOKE=${SOAK_PROVOKE:-10}
RESULTS=${RESULTS:-results}
mkdir -p "$RESULTS"
out=$RESULTS/soak-$(date -u +%Y%m%d-%H%M%S).md

# run ARGS...: one oomlab run; prints its run directory. A FAIL (exit 1) is
# a soak finding, counted from run.json; only exit 2 breaks the soak.
run() {
	local log rc dir
	log=$(mktemp)
	set +e
	"$OOMLAB" run "$@" --variants "$VARIANTS" --results "$RESULTS" 2>&1 | tee "$log" >&2
	rc=${PIPESTATUS[0]}
	set -e
	dir=$(sed -n 's/^results: \(.*\)\/run.json$/\1/p' "$log" | tail -1)
	rm -f "$log"
	if [ -z "$dir" ] || [ ! -f "$dir/run.json" ] || [ "$rc" -gt 1 ]; then
		echo "soak: oomlab run $* broke (exit $rc)" >&2
		return 2
	fi
	echo "$dir"
}

# SOAK_IDLE_RUN / SOAK_DETECT_RUN: a finished run directory to count
# instead of running that part again (e.g. after an interrupted soak);
# SOAK_DETECT_RUN may name several, separated by spaces.
# Idle boots share the host (--jobs auto: as many as the CPU and memory
# budget allows); the detector scenarios are timing-sensitive and run alone
# whatever --jobs says.
idle=${SOAK_IDLE_RUN:-$(run idle --repeat "$BOOTS" --jobs "${SOAK_JOBS:-auto}")}
detect=${SOAK_DETECT_RUN:-$(run detector-selftest detector-hardlockup --repeat "$PROVOKE")}

# Per kernel: idle boots, boots not PASS, findings; per detector class, the
# runs that provoked it and the runs that saw it (>= 1 report).
summary=$(jq -rs '
	def per(f): group_by(.variant) | map({variant: .[0].variant} + f);
	(.[0].results | per({boots: length,
		not_pass: map(select(.verdict != "pass")) | length,
		findings: map(.figures | .lockups + ([.by_kind | (.panic, .bug, .warning, .agent_lost, .qemu_exited)] | map(. // 0) | add)) | add,
		boot_s_p50: (map(.figures.boot_s) | sort | .[length/2|floor] * 100 | round / 100)})) as $idle |
	(.[1:] | map(.results) | add | per({
		soft: [map(select(.scenario == "detector-selftest")) | length, map(select(.scenario == "detector-selftest" and .figures.by_kind.soft_lockup > 0)) | length],
		rcu:  [map(select(.scenario == "detector-selftest")) | length, map(select(.scenario == "detector-selftest" and .figures.by_kind.rcu_stall > 0)) | length],
		hung: [map(select(.scenario == "detector-selftest")) | length, map(select(.scenario == "detector-selftest" and .figures.by_kind.hung_task > 0)) | length],
		hard: [map(select(.scenario == "detector-hardlockup")) | length, map(select(.scenario == "detector-hardlockup" and .figures.by_kind.hard_lockup > 0)) | length],
		not_pass: map(select(.verdict != "pass")) | length})) as $det |
	{idle: $idle, detect: $det}' "$idle/run.json" $(for d in $detect; do echo "$d/run.json"; done))

{
	echo "# oomlab soak, $(date -u +%F) ($("$OOMLAB" --version 2>/dev/null || echo oomlab))"
	echo
	echo "Idle boots: $(basename "$idle"); detector provocations: $(for d in $detect; do basename "$d"; done | paste -sd' ')."
	echo
	echo "| kernel | idle boots | not PASS | findings | boot s p50 | soft lockup seen | RCU stall seen | hung task seen | hard lockup seen | detector runs not PASS |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	jq -r '.idle as $i | .detect[] as $d | $i[] | select(.variant == $d.variant) |
		"| \(.variant) | \(.boots) | \(.not_pass) | \(.findings) | \(.boot_s_p50) | \($d.soft[1])/\($d.soft[0]) | \($d.rcu[1])/\($d.rcu[0]) | \($d.hung[1])/\($d.hung[0]) | \($d.hard[1])/\($d.hard[0]) | \($d.not_pass) |"' <<<"$summary"
} >"$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "soak: $out"

# Clean when no idle boot failed or found anything, every detector run
# passed and every provocation was seen.
jq -e '(.idle | all(.not_pass == 0 and .findings == 0)) and
	(.detect | all(.not_pass == 0 and .soft[0] == .soft[1] and .rcu[0] == .rcu[1] and .hung[0] == .hung[1] and .hard[0] == .hard[1]))' \
	<<<"$summary" >/dev/null

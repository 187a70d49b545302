#!/usr/bin/env bash
# make test-trees: oomlab, unchanged, on kernel trees other than its pinned
# base (issue 16). For each tree: install Debian's linux-source-<version>
# if missing (root) and unpack it once under the oomlab cache, build its
# baseline kernel (optional kconfig symbols the tree lacks are skipped with
# a note), then run SCENARIOS on it; the default 6.12 source runs the same
# scenarios for the table. Not in CI: it builds kernels (~4 min each, cold).
#
#   make test-trees [TREES="6.1 6.12"] [TREE_SCENARIOS="quick tetsuo-rt-idle detector-selftest"]
#
# Writes results/trees-<date>.md: one row per scenario x tree with the
# verdict (PASS, FAIL, ERROR, SKIP with its reason), from each run's
# run.json. The exit status is 0 when every run ended with a verdict
# (FAIL is a finding, not a broken tool), 2 when a build or run broke.
set -euo pipefail
cd "$(dirname "$0")/.."

OOMLAB=${OOMLAB:-bin/oomlab}
TREES=${TREES:-"6.1 6.12"}
SCENARIOS=${TREE_SCENARIOS:-"quick tetsuo-rt-idle detector-selftest"}
CACHE=${OOMLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oomlab}
RESULTS=${RESULTS:-results}
DEFAULT_TREE=6.12 # the one oomlab unpacks itself (patches/BASE)

# tree_dir VERSION: the unpacked Debian linux-source-VERSION, made once.
tree_dir() {
	local v=$1 pkg=linux-source-$1
	local tarball=/usr/src/$pkg.tar.xz dir=$CACHE/debian-trees/$pkg
	if [ ! -f "$tarball" ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "test-trees: $tarball is missing; run: sudo apt-get install -y $pkg" >&2
			return 2
		fi
		echo "test-trees: installing $pkg" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
	fi
	# The marker lives beside the tree: a file inside it would change the
	# tree's identity (oomlab hashes every file's name, size and mtime),
	# and with it every cache key.
	if [ ! -f "$dir.unpacked" ]; then
		echo "test-trees: unpacking $tarball" >&2
		rm -rf "$dir.tmp" "$dir" && mkdir -p "$dir.tmp"
		tar -xf "$tarball" -C "$dir.tmp" --strip-components=1
		mv "$dir.tmp" "$dir" && touch "$dir.unpacked"
	fi
	echo "$dir"
}

mkdir -p "$RESULTS"
table=$RESULTS/trees-$(date -u +%Y%m%d-%H%M%S).md
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
broken=0
for v in $TREES; do
	src=()
	if [ "$v" != "$DEFAULT_TREE" ]; then
		dir=$(tree_dir "$v") || { broken=1; continue; }
		src=(--kernel-src "$dir")
	fi
	echo "== tree $v: build" >&2
	if ! "$OOMLAB" build "${src[@]}" --variant baseline; then
		echo "| (build) | $v | ERROR: the baseline kernel did not build |" >>"$rows"
		broken=1
		continue
	fi
	echo "== tree $v: run $SCENARIOS" >&2
	# Baseline only: the series is written against 6.12 (patches/BASE)
	# and is not expected to apply to other trees.
	set +e
	# shellcheck disable=SC2086 # SCENARIOS is a word list
	"$OOMLAB" run $SCENARIOS "${src[@]}" --variants baseline --results "$RESULTS" 2>&1 | tee "$RESULTS/.trees-$v.log"
	rc=${PIPESTATUS[0]}
	set -e
	run=$(sed -n 's/^results: \(.*\)\/run.json$/\1/p' "$RESULTS/.trees-$v.log" | tail -1)
	rm -f "$RESULTS/.trees-$v.log"
	if [ -z "$run" ] || [ ! -f "$run/run.json" ]; then
		echo "| (run) | $v | ERROR: no run.json (exit $rc) |" >>"$rows"
		broken=1
		continue
	fi
	[ "$rc" -le 1 ] || broken=1
	# One row per guest run: the verdict and why (the failed expectations,
	# the error or the skip reason), a '|' in a reason made harmless.
	jq -r --arg tree "$v" --arg run "$(basename "$run")" '.results[] |
		"| \(.scenario) #\(.repeat) | \($tree) (\(.variant)) | \(.verdict | ascii_upcase)" +
		(([.skip_reason, .error] + (.failures // [])) | map(select(. != null and . != "")) |
		 if length > 0 then ": " + (join("; ") | gsub("\\|"; "/")) else "" end) +
		" | [\($run)](\($run)/run.json) |"' "$run/run.json" >>"$rows"
done
{
	echo "# oomlab on other kernel trees ($(date -u +%F), baseline kernels, TCG unless KVM works)"
	echo
	echo "| scenario | tree | verdict | run |"
	echo "|---|---|---|---|"
	sort -t'|' -k2,2 -k3,3V "$rows"
} >"$table.tmp" && mv "$table.tmp" "$table"
cat "$table"
echo "test-trees: $table"
exit $((broken * 2))

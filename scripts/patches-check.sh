#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# patches-check.sh: check the oomlab kernel patch series the way a maintainer
# would: on a fresh copy of the pinned base (patches/BASE), `git am` every
# patch of patches/series in order, run `scripts/checkpatch.pl --strict` on
# it (zero errors, warnings and checks), and build the tree after it
# (incrementally: every patch must build on its own). Stops at the first
# problem and names the patch.
#
# usage: scripts/patches-check.sh [--no-build] [--no-variants] [--debug]
#                                 [--keep] [--jobs N] [--workdir DIR]
#
#   --no-build     only git am + checkpatch (quick)
#   --no-variants  skip the lean-config build of the touched files at the end
#   --debug        also merge kconfig/debug.config (lockdep, KASAN; slow)
#   --keep         keep the work directory (printed at the end)
#   --jobs N       make -jN (default 2; builds run under nice -n 10)
#   --workdir DIR  use DIR (must not exist) instead of a mktemp directory
#
# Build config: `make tinyconfig` + kconfig/base.config + kconfig/lockup.config
# (+ debug.config with --debug; a built-in minimal x86_64 fragment if there is
# no kconfig/ directory) + the options the series adds or needs, re-merged
# after every patch so that options introduced by a patch get enabled.
# With ccache installed the compiler is "ccache gcc", with CCACHE_BASEDIR set
# to the work directory so that repeated runs hit the cache.
# At the end (unless --no-variants) the directories with the files the series
# touches are also compiled with a lean config (tinyconfig, no MEMCG, DEBUG_FS,
# FAULT_INJECTION, SYSCTL, VM_EVENT_COUNTERS) to catch #ifdef mistakes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATCHES=$ROOT/patches
BUILD=1
VARIANTS=1
DEBUG=0
KEEP=0
JOBS=${JOBS:-2}
WORK=

die() {
	echo "patches-check: $*" >&2
	exit 1
}

usage() {
	sed -n '/^# usage:/,/^# Build config/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case $1 in
	--no-build) BUILD=0 ;;
	--no-variants) VARIANTS=0 ;;
	--debug) DEBUG=1 ;;
	--keep) KEEP=1 ;;
	--jobs) shift; JOBS=${1:?--jobs needs a value} ;;
	--workdir) shift; WORK=${1:?--workdir needs a value} ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

# --- patches/BASE and patches/series --------------------------------------
[ -f "$PATCHES/BASE" ] || die "missing $PATCHES/BASE"
[ -f "$PATCHES/series" ] || die "missing $PATCHES/series"
base_field() {
	sed -n "s/^$1:[[:space:]]*//p" "$PATCHES/BASE" | head -n1
}
TARBALL=$(base_field tarball)
KVER=$(base_field kernel)
[ -n "$TARBALL" ] || die "patches/BASE has no 'tarball:' line"
[ -f "$TARBALL" ] || die "base tarball $TARBALL not found (package $(base_field package) $(base_field version))"

mapfile -t SERIES < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$PATCHES/series")
UPSTREAM=${#SERIES[@]}
# The test-only series (fault injection; never sent upstream) goes on top:
# it must apply, be checkpatch clean and build like the rest.
if [ -f "$PATCHES/test/series" ]; then
	mapfile -t TESTS < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$PATCHES/test/series")
	SERIES+=("${TESTS[@]/#/test/}")
fi
for p in "${SERIES[@]}"; do
	[ -f "$PATCHES/$p" ] || die "$p: listed in patches/series or patches/test/series but missing"
done
echo "patches-check: $UPSTREAM patches + $((${#SERIES[@]} - UPSTREAM)) test-only against $(base_field package) $(base_field version)"

# --- fresh git tree of the pristine base ----------------------------------
if [ -n "$WORK" ]; then
	[ ! -e "$WORK" ] || die "$WORK already exists"
	mkdir -p "$WORK"
	WORK=$(cd "$WORK" && pwd)
else
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/patches-check.XXXXXX")
fi
cleanup() {
	if [ "$KEEP" = 1 ]; then
		echo "patches-check: work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

SRC=$WORK/linux
OBJ=$SRC/.obj		# inside the tree: kbuild then uses srctree=.., which
			# keeps paths identical across runs (ccache hits)
mkdir -p "$SRC"
echo "patches-check: unpacking $TARBALL"
tar -xJf "$TARBALL" -C "$SRC" --strip-components=1
if [ -n "$KVER" ]; then
	v=$(make -s -C "$SRC" kernelversion 2>/dev/null || true)
	[ "$v" = "$KVER" ] || die "tarball is kernel $v, patches/BASE says $KVER"
fi
git -C "$SRC" init -q -b base
git -C "$SRC" config user.name "patches-check"
git -C "$SRC" config user.email "patches-check@localhost"
git -C "$SRC" config core.autocrlf false
echo ".obj/" >> "$SRC/.git/info/exclude"
git -C "$SRC" add -A -f .
git -C "$SRC" commit -q -m "base: $(base_field package) $(base_field version)"
BASE_COMMIT=$(git -C "$SRC" rev-parse HEAD)

# --- kernel config ---------------------------------------------------------
export CCACHE_BASEDIR=$WORK CCACHE_NOHASHDIR=1
CC=gcc
command -v ccache >/dev/null 2>&1 && CC="ccache gcc"
kmake() {
	nice -n 10 make -C "$SRC" O="$OBJ" CC="$CC" "$@"
}

FRAGS=()
if [ -d "$ROOT/kconfig" ]; then
	for f in base lockup; do
		[ -f "$ROOT/kconfig/$f.config" ] && FRAGS+=("$ROOT/kconfig/$f.config")
	done
	[ "$DEBUG" = 1 ] && [ -f "$ROOT/kconfig/debug.config" ] && FRAGS+=("$ROOT/kconfig/debug.config")
fi
if [ ${#FRAGS[@]} -eq 0 ]; then
	cat > "$WORK/minimal.config" <<-'EOF'
	CONFIG_64BIT=y
	CONFIG_SMP=y
	CONFIG_MMU=y
	CONFIG_PRINTK=y
	CONFIG_BUG=y
	CONFIG_PROC_FS=y
	CONFIG_PROC_SYSCTL=y
	CONFIG_SYSFS=y
	CONFIG_MULTIUSER=y
	CONFIG_FUTEX=y
	CONFIG_SHMEM=y
	CONFIG_TMPFS=y
	CONFIG_BLK_DEV_INITRD=y
	CONFIG_BINFMT_ELF=y
	CONFIG_TTY=y
	CONFIG_SERIAL_8250=y
	CONFIG_SERIAL_8250_CONSOLE=y
	CONFIG_CGROUPS=y
	CONFIG_MEMCG=y
	CONFIG_DEBUG_KERNEL=y
	CONFIG_DEBUG_FS=y
	CONFIG_FAULT_INJECTION=y
	CONFIG_FAULT_INJECTION_DEBUG_FS=y
	EOF
	FRAGS+=("$WORK/minimal.config")
fi
# What the series needs to be compiled at all: futexes (the robust lists
# the oom_reaper keeps), dynamic debug (the handoff pr_debug), the freezer
# (kernel/freezer.c), debugfs and the test-only fault injection knob.
cat > "$WORK/series.config" <<-'EOF'
CONFIG_FUTEX=y
CONFIG_DYNAMIC_DEBUG=y
CONFIG_CGROUP_FREEZER=y
CONFIG_DEBUG_FS=y
CONFIG_OOM_DEBUG_FAULTS=y
EOF

merge_series_config() {
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" "$OBJ/.config" \
		"$WORK/series.config" >/dev/null
	kmake -s olddefconfig >/dev/null
}

if [ "$BUILD" = 1 ]; then
	mkdir -p "$OBJ"
	echo "patches-check: config: tinyconfig + ${FRAGS[*]##*/} + series.config"
	kmake -s tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" "$OBJ/.config" \
		"${FRAGS[@]}" >/dev/null
	kmake -s olddefconfig >/dev/null
fi

# --- the series, one patch at a time ---------------------------------------
n=0
for p in "${SERIES[@]}"; do
	n=$((n + 1))
	echo "patches-check: [$n/${#SERIES[@]}] $p"
	if ! git -C "$SRC" am -q --keep-cr "$PATCHES/$p" > "$WORK/am.log" 2>&1; then
		cat "$WORK/am.log" >&2
		die "$p: does not apply (git am)"
	fi
	rc=0
	# UNKNOWN_COMMIT_ID: the base is a release tarball without upstream
	# history, so checkpatch cannot look up the ids in Fixes: tags.
	out=$(cd "$SRC" && ./scripts/checkpatch.pl --strict --ignore UNKNOWN_COMMIT_ID "$PATCHES/$p" 2>&1) || rc=$?
	if [ "$rc" != 0 ] ||
	   ! grep -q '^total: 0 errors, 0 warnings, 0 checks' <<< "$out"; then
		echo "$out" >&2
		die "$p: checkpatch --strict is not clean"
	fi
	if [ "$BUILD" = 1 ]; then
		merge_series_config
		if ! kmake -j"$JOBS" vmlinux > "$WORK/build-$n.log" 2>&1; then
			grep -E 'error|warning' "$WORK/build-$n.log" | head -n 40 >&2 || true
			tail -n 20 "$WORK/build-$n.log" >&2
			die "$p: build failed (log: $WORK/build-$n.log, use --keep)"
		fi
		if grep -E '^[^ ]+:[0-9]+:[0-9]+: warning:' "$WORK/build-$n.log" >&2; then
			die "$p: the build has compiler warnings"
		fi
	fi
done

# Every option the series relies on must have survived olddefconfig.
if [ "$BUILD" = 1 ]; then
	while read -r line; do
		grep -qx "$line" "$OBJ/.config" ||
			die "config: '$line' did not survive olddefconfig (missing dependency?)"
	done < "$WORK/series.config"
fi

# --- lean config: #ifdef correctness of what the series touches ------------
if [ "$BUILD" = 1 ] && [ "$VARIANTS" = 1 ]; then
	LEAN=$SRC/.obj-lean
	echo ".obj-lean/" >> "$SRC/.git/info/exclude"
	# Single objects can only be built when the config enables them, so
	# build the directories the series touches instead.
	mapfile -t objs < <(git -C "$SRC" diff --name-only "$BASE_COMMIT" HEAD -- '*.c' |
		xargs -r -n1 dirname | sort -u | sed 's|$|/|')
	[ ${#objs[@]} -gt 0 ] || die "the series touches no .c file?"
	echo "patches-check: lean config: ${objs[*]}"
	mkdir -p "$LEAN"
	cat > "$WORK/lean.config" <<-'EOF'
	CONFIG_64BIT=y
	CONFIG_SMP=y
	CONFIG_MMU=y
	# CONFIG_MEMCG is not set
	# CONFIG_DEBUG_FS is not set
	# CONFIG_FAULT_INJECTION is not set
	# CONFIG_SYSCTL is not set
	# CONFIG_FUTEX is not set
	# CONFIG_DYNAMIC_DEBUG is not set
	# CONFIG_VM_EVENT_COUNTERS is not set
	# CONFIG_CGROUP_FREEZER is not set
	EOF
	nice -n 10 make -s -C "$SRC" O="$LEAN" CC="$CC" tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$LEAN" "$LEAN/.config" \
		"$WORK/lean.config" >/dev/null
	nice -n 10 make -s -C "$SRC" O="$LEAN" CC="$CC" olddefconfig >/dev/null
	if ! nice -n 10 make -C "$SRC" O="$LEAN" CC="$CC" -j"$JOBS" "${objs[@]}" \
			> "$WORK/build-lean.log" 2>&1; then
		grep -E 'error|warning' "$WORK/build-lean.log" | head -n 40 >&2 || true
		die "${SERIES[-1]}: the series does not build with a lean config (log: $WORK/build-lean.log)"
	fi
	if grep -E '^[^ ]+:[0-9]+:[0-9]+: warning:' "$WORK/build-lean.log" >&2; then
		die "${SERIES[-1]}: compiler warnings with a lean config"
	fi
fi

echo "patches-check: OK ($UPSTREAM patches + $((${#SERIES[@]} - UPSTREAM)) test-only)"

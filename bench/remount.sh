#!/usr/bin/env bash
# Benchmark: mounting a compressed image again once its index is saved (what every mount after
# the first one costs), from the command to "mounted".
#
#   bash bench/remount.sh IMG...   (root; compressed partclone images, e.g. bench/compressed.sh's
#                                   copies; TOOL=vpartimage or vntfsclone for other formats)
#
# Per image: one mount that builds and saves the index (in a private cache directory), then
# RUNS (default 5) timed mounts that load it, each ending when the tool exits (its daemon
# serves) and followed by an unmount; prints min-max. Then RUNS mounts under `strace -f -ttt`
# split into phases by the system calls that mark them (seconds from the start to: the image
# opened, the saved index opened, the fork, the FUSE mount, the end), min-max over RUNS; strace
# slows every system call, so these phases add up to more than the plain mount.
set -Eeuo pipefail
export LC_ALL=C
RUNS=${RUNS:-5}
TOOL=${TOOL:-vpartclone}
[ $# -gt 0 ] || { echo "usage: bench/remount.sh IMG..." >&2; exit 2; }
IMGS=()
for img in "$@"; do IMGS+=("$(realpath "$img")"); done
trap 'echo "remount.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

# BIN=path measures another build (e.g. an older commit's).
if [ -z "${BIN:-}" ]; then
    cd "$(dirname "$0")/.."
    cargo build --release -q -p imagebackup-cli --bins
    BIN=$PWD/target/release/$TOOL
fi
WORK=$(mktemp -d)
trap 'umount "$WORK/mnt" 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/mnt" "$WORK/cache"

mount_once() { # IMG: mount, then unmount; prints seconds to "mounted"
    local s e
    s=$(date +%s.%N)
    "$BIN" "$1" -m "$WORK/mnt" --index-cache-dir "$WORK/cache" >/dev/null
    e=$(date +%s.%N)
    umount "$WORK/mnt"
    echo "$e - $s" | bc
}
minmax() { sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.3f-%.3f", lo, hi}'; }

# phases STRACE_LOG: seconds from start to each mark, one line "open index fork mount exit".
phases() {
    awk '
        NR == 1 { t0 = $2 }
        { t = $2 - t0 }
        !open && /open.*O_RDONLY/ && $0 ~ img { open = t }
        !idx && /(openat|pread64|read)\(.*\.idx/ { idx = t }
        !idx && /openat\(.*\.idx/ { idx = t }
        !fork && /clone\(|fork\(|clone3\(/ { fork = t }
        !mnt && /mount\(|fusermount/ { mnt = t }
        $1 == pid && / exited with 0/ && !ex { ex = t }
        NR == 1 { pid = $1 }
        END { printf "%.4f %.4f %.4f %.4f %.4f\n", open, idx, fork, mnt, ex }' img="$1" "$2"
}

printf '%-28s %-14s %-14s %-14s %-14s %-14s %s\n' image "mount s" "image open" "index read" "fork" "fuse mount" "strace: exit"
for img in "${IMGS[@]}"; do
    name=$(basename "$img")
    cat "$img" >/dev/null # warm the page cache: measure the tool, not the disk
    mount_once "$img" >/dev/null # builds and saves the index
    times=()
    for _ in $(seq "$RUNS"); do times+=("$(mount_once "$img")"); done
    cols=()
    for _ in $(seq "$RUNS"); do
        # strace follows the daemon and ends with it: the tool's message says it serves.
        rm -f "$WORK/said"
        strace -f -ttt -o "$WORK/trace" "$BIN" "$img" -m "$WORK/mnt" --index-cache-dir "$WORK/cache" >"$WORK/said" &
        until grep -qs Serving "$WORK/said"; do sleep 0.05; done
        umount "$WORK/mnt"
        wait
        phases "$name" "$WORK/trace" >>"$WORK/phases"
    done
    for c in 1 2 3 4 5; do cols+=("$(cut -d' ' -f$c "$WORK/phases" | minmax)"); done
    rm -f "$WORK/phases"
    printf '%-28s %-14s %-14s %-14s %-14s %-14s %s\n' "$name" "$(printf '%s\n' "${times[@]}" | minmax)" "${cols[@]}"
done

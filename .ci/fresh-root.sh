#!/usr/bin/env bash
# CI's fresh-root stage (.ci/run runs it; it also runs by hand, as root, from any checkout): proves
# that the README's first command works on a bare Debian 12, where nothing installed by hand on
# this machine can help.
#   1. installs mmdebstrap on this machine if it is missing, and builds a bare bookworm root
#      filesystem with it (--variant=apt: the Essential packages and apt; the apt sources of a
#      fresh Debian 12 install: bookworm, bookworm-updates, bookworm-security) in a temp dir;
#   2. puts the committed tree there as /src (git archive HEAD: uncommitted changes are NOT in it);
#   3. in the root (chroot with a clean environment, /proc and /dev/pts mounted, this machine's
#      resolv.conf) runs the README's command: tools/install-deps.sh, cmake configure, cmake
#      build; then the quickstart, and the README's train_multihead run stopped after 50 steps;
#   4. unmounts what it mounted and deletes the root, whether a step passed, failed or was
#      interrupted (the mounts are in a private mount namespace: they vanish with the script even
#      if it is killed).
# Each step prints how long it took. The exit status is 0 only if every step passed; the last line
# is "fresh-root: PASSED ..." or "fresh-root: FAILED ...".
# Environment: GG_FRESH_ROOT_DIR (where the temp dir goes; default /var/tmp; ~0.9 GB at the end),
# GG_FRESH_ROOT_KEEP=1 (keep the root, unmounted, for a look; its path is printed).
# Needs: root, and deb.debian.org over http.
set -uo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.." || exit 2

if [ "$(id -u)" != 0 ]; then
  echo "fresh-root: must run as root (mmdebstrap, chroot, mount)" >&2
  exit 2
fi
# A private mount namespace: what this script mounts is invisible to the rest of the machine and
# disappears with the script even if it is killed with SIGKILL (the trap below cannot run then).
if [ "${GG_FRESH_ROOT_NS:-0}" != 1 ] && unshare --mount --propagation private true 2>/dev/null; then
  GG_FRESH_ROOT_NS=1 exec unshare --mount --propagation private bash "$self" "$@"
fi

t0=$(date +%s)
stage_start=$t0
# "fresh-root: <what> took N s (at N s)"
took() {
  local now
  now=$(date +%s)
  echo "fresh-root: $1 took $((now - stage_start)) s (at $((now - t0)) s)"
  stage_start=$now
}
# "fresh-root: FAILED: <what> (<why>) after N s (at N s)", and exit 1 (the trap cleans up).
fail() {
  local now
  now=$(date +%s)
  echo "fresh-root: FAILED: $1 (${2:-see above}) after $((now - stage_start)) s (at $((now - t0)) s)"
  exit 1
}

work=""
root=""
# Unmounts everything under the root (deepest first: /dev/pts, /proc, whatever else is there) and
# deletes the temp dir. Returns 1 if something stayed mounted (then nothing is deleted).
remove_root() {
  [ -n "$work" ] || return 0
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do
      umount "$m" 2>/dev/null || umount --lazy "$m" || echo "fresh-root: could not unmount $m" >&2
    done
  if awk -v r="$work" 'index($2, r "/") == 1 {found = 1} END {exit !found}' /proc/self/mounts; then
    echo "fresh-root: something is still mounted under $work: not deleting it" >&2
    return 1
  fi
  if [ "${GG_FRESH_ROOT_KEEP:-0}" = 1 ]; then
    echo "fresh-root: kept the root at $root"
  else
    # --one-file-system: never descend into a mount, whatever happened above.
    rm -rf --one-file-system "$work"
  fi
  work=""
}
# On any exit (a failed step, an interrupt, the end): nothing stays mounted or on disk.
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  remove_root || status=1
  exit "$status"
}
trap cleanup EXIT
trap 'echo "fresh-root: interrupted"; exit 130' INT TERM

# ---- 1. mmdebstrap and a bare bookworm root ------------------------------------------------------
if ! command -v mmdebstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends mmdebstrap; } ||
    fail "installing mmdebstrap"
  took "installing mmdebstrap"
fi
work=$(mktemp -d "${GG_FRESH_ROOT_DIR:-/var/tmp}/gg-fresh-root.XXXXXX") || fail "mktemp"
chmod 755 "$work"  # apt's download sandbox (user _apt) must reach the root's lists
root="$work/root"
mirror=http://deb.debian.org
# --mode=root: we are root; the root's /dev gets real device nodes (no bind mount of /dev needed).
mmdebstrap --mode=root --variant=apt bookworm "$root" \
  "deb $mirror/debian bookworm main" \
  "deb $mirror/debian bookworm-updates main" \
  "deb $mirror/debian-security bookworm-security main" || fail "mmdebstrap"
took "mmdebstrap (bare Debian 12 root, $(du -sm "$root" | cut -f1) MB)"

# ---- 2. the committed tree -----------------------------------------------------------------------
commit=$(git rev-parse --short HEAD) || fail "git rev-parse HEAD" "is $PWD a git checkout?"
git diff --quiet HEAD -- 2>/dev/null ||
  echo "fresh-root: note: uncommitted changes in $PWD are not tested (HEAD $commit is)"
if ! { mkdir "$root/src" && git archive HEAD | tar -x -C "$root/src"; }; then
  fail "copying HEAD into the root"
fi
took "copying HEAD ($commit) into the root"

# ---- 3. the README's command in the root ---------------------------------------------------------
cp /etc/resolv.conf "$root/etc/resolv.conf" || fail "copying /etc/resolv.conf"
# What a booted Debian has and these steps use: /proc (the root's /dev/fd and /dev/stdin point
# into it), and a devpts of its own (apt runs dpkg on a pseudo-terminal: without one it prints
# "E: Can not write log (Is /dev/pts mounted?)"). mmdebstrap made the device nodes of /dev.
mount -t proc proc "$root/proc" || fail "mounting /proc"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$root/dev/pts" ||
  fail "mounting /dev/pts"
# Runs a command in /src of the root, with the environment of a fresh root login: nothing of this
# machine's environment (CI, GG_*, ONEDNN_*, CXX, CMAKE_*, PATH) reaches it.
in_root() {
  echo "fresh-root: # $1"
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /src && $1"
}
in_root "bash tools/install-deps.sh" || fail "tools/install-deps.sh"
took "tools/install-deps.sh (apt-get update and install)"
in_root "cmake -S . -B build -G Ninja" || fail "cmake configure"
took "cmake configure"
in_root "cmake --build build" || fail "cmake build"
took "cmake build"
in_root "./build/examples/quickstart" || fail "quickstart"
took "quickstart"
# The README's training run, stopped (with a checkpoint, exit status 0) after 50 of its 3000
# steps: the same model, data and schedule. (A shorter full run would fail on purpose: the example
# exits 1 when it does not end below the bigram baseline.)
in_root "./build/examples/train_multihead --stop-after 50 --eval-every 25 \
  --out-dir /tmp/train_multihead_out" || fail "train_multihead"
took "train_multihead (50 steps)"

remove_root || fail "unmounting and deleting the root"
took "unmounting and deleting the root"

echo "fresh-root: PASSED in $(($(date +%s) - t0)) s: HEAD $commit installs, configures, builds and" \
  "runs on a bare Debian 12"

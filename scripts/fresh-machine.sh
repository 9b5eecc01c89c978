#!/usr/bin/env bash
# The README's commands as a new user meets them: a new Debian 12 system (debootstrap
# minbase: Debian's required packages and apt) with only git added, a fresh clone of this
# repository's `main` (or --rev), then, each timed, in a fresh clone of its own:
#   install-deps, scripts/demo.sh, scripts/test.sh (and test.sh once more from another
#   fresh clone, to time it where install-deps has run and the compiler cache is warm).
#
#   sudo scripts/fresh-machine.sh [--root DIR] [--rev REV] [--ca-bundle FILE] [--keep]
#                                 [--only demo|test]
#
# Needs root (chroot and mounts) and debootstrap (scripts/packages.txt lists it). The
# system's kernel is shared, so this is a new user space, not a new kernel. --ca-bundle
# passes a CA file to pip and git in the new system, for networks behind a TLS proxy.
# Prints one line per step with its time; logs go to DIR/fresh-*.log. Exits non-zero when
# a step fails. Not part of CI: it downloads torch (a few GB) and builds from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
repo=$PWD
root=/var/tmp/strata-fresh
rev=main
ca=""
keep=0
only=""
while (($#)); do
  case $1 in
    --root) root=$2; shift 2 ;;
    --rev) rev=$2; shift 2 ;;
    --ca-bundle) ca=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --only) only=$2; shift 2 ;;
    *) die "fresh-machine: unknown argument $1 (see the header of $0)" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "fresh-machine: needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "fresh-machine: debootstrap not found (scripts/install-deps.sh installs it)"
git rev-parse --verify -q "$rev^{commit}" >/dev/null || die "fresh-machine: $rev is not a commit of $repo"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

unmount_all() {
  for m in "$root/mnt/origin" "$root/dev" "$root/sys" "$root/proc"; do
    mountpoint -q "$m" 2>/dev/null && umount -R "$m" 2>/dev/null || umount -lR "$m" 2>/dev/null || true
  done
}
cleanup() {
  unmount_all
  if [ "$keep" -eq 0 ] && [ -d "$root" ]; then rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

start=$SECONDS
timed() {  # timed NAME CMD...: runs CMD, logs to $root/../fresh-NAME.log, prints its time
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" >"$logs/fresh-$name.log" 2>&1 || rc=$?
  printf 'fresh-machine: %-28s %5d s  %s\n' "$name" $((SECONDS - t0)) \
    "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc; $logs/fresh-$name.log)")"
  return $rc
}
in_root() {  # a login-like shell in the new system, with none of this machine's environment
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ${ca:+PIP_CERT=/etc/strata-ca.pem} \
    ${ca:+GIT_SSL_CAINFO=/etc/strata-ca.pem} /bin/bash -lc "$1"
}

unmount_all
rm -rf --one-file-system "$root"
mkdir -p "$root"
logs=$(dirname "$root")
timed debootstrap debootstrap --variant=minbase bookworm "$root" "$mirror"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"   # rslave: unmounting them later
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"   # must not reach this system's
cp /etc/resolv.conf "$root/etc/resolv.conf"
[ -z "$ca" ] || cp "$ca" "$root/etc/strata-ca.pem"
mkdir -p "$root/mnt/origin"
mount --bind -o ro "$repo" "$root/mnt/origin"
timed apt-git in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git"
in_root "git --version && dpkg-query -W -f='\${Package}\n' | wc -l | sed 's/^/packages installed: /'" \
  >"$logs/fresh-system.log"

clone() { echo "git clone -q /mnt/origin $1 && cd $1 && git checkout -q $rev"; }
timed install-deps in_root "$(clone /root/s0) && scripts/install-deps.sh"
if [ "$only" != test ]; then
  timed demo in_root "$(clone /root/s1) && scripts/demo.sh"
fi
if [ "$only" != demo ]; then
  # The components install-deps installs must run there, not skip (Slurm's daemons are
  # left out: a chroot shares this machine's hostname and ports).
  timed test in_root "$(clone /root/s2) && STRATA_REQUIRE=deps,browser scripts/test.sh"
  timed test-again in_root "$(clone /root/s3) && STRATA_REQUIRE=deps,browser scripts/test.sh"
fi
echo "fresh-machine: all steps passed in $((SECONDS - start)) s (logs: $logs/fresh-*.log)"

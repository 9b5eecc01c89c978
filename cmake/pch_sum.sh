#!/bin/sh
# Compiler launcher of the precompiled torch header under clang (StrataCcache.cmake):
#   pch_sum.sh BASE_DIR COMPILER ARGS...
# runs the compiler uncached, then writes OUT.sum beside a .pch OUT: a hash of its
# command line (BASE_DIR cut out) and of the contents of every file it was made from
# (its depfile). ccache hashes that file instead of the .pch (pch_external_checksum):
# clang's .pch holds the absolute paths of its build folder, so two clones' PCHs differ
# in bytes though made of the same headers, and every object using it would miss.
# The .pch itself is not cached, since a PCH made in another clone names that clone's
# files, which clang checks when it reads it.
set -e
base=$1
shift
"$@"
out='' dep='' prev=''
for arg in "$@"; do
  case $prev in -o) out=$arg ;; -MF) dep=$arg ;; esac
  prev=$arg
done
case $out in *.pch) ;; *) exit 0 ;; esac
[ -f "$dep" ] || { echo "pch_sum.sh: no depfile for $out (expected -MF)" >&2; exit 1; }
{
  printf '%s\n' "$@" | sed "s|$base||g"
  sed -e 's/^[^:]*://' -e 's/\\$//' "$dep" | tr ' ' '\n' | grep -v '^$' \
    | while read -r file; do sha256sum <"$file"; done
} | sha256sum >"$out.sum.tmp"
mv "$out.sum.tmp" "$out.sum"

#!/bin/sh
# Usage: listed.sh INCLUDE_DIR HEADER...
# Fails, naming them, when a .hpp under INCLUDE_DIR/localvm is not among the
# HEADERs (include/meson.build's lists: installed and compiled alone), or a
# HEADER does not exist.
set -eu
dir=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/localvm-listed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$dir" && find localvm -name '*.hpp') | LC_ALL=C sort >"$tmp/present"
printf '%s\n' "$@" | LC_ALL=C sort >"$tmp/listed"
missing=$(LC_ALL=C comm -23 "$tmp/present" "$tmp/listed")
absent=$(LC_ALL=C comm -13 "$tmp/present" "$tmp/listed")
status=0
if [ -n "$missing" ]; then
  echo "not in include/meson.build (neither installed nor compiled alone):" >&2
  echo "$missing" | sed 's/^/  /' >&2
  status=1
fi
if [ -n "$absent" ]; then
  echo "listed in include/meson.build but not under $dir:" >&2
  echo "$absent" | sed 's/^/  /' >&2
  status=1
fi
[ $status -eq 0 ] && echo "$# public headers, each listed once"
exit $status

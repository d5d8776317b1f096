# Helpers shared by the guest builders (sourced by test/guests/build and the
# per-guest build.sh scripts; bash, set -euo pipefail in force).

die() {
  echo "error: $*" >&2
  exit 1
}

# Prints a progress note to the build log (stdout of a builder goes there).
note() {
  echo "[$(date +%H:%M:%S)] $*"
}

need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' is missing: run scripts/setup (as root) first"
  done
}

# `apt-cache show` of the candidates of the given packages. Runs
# `apt-get update` once if apt does not know them (a fresh machine may have
# no package lists yet). Each apt-cache call reads the whole package cache,
# which takes seconds on a busy machine: ask for everything at once.
apt_show() {
  apt-cache show --no-all-versions "$@" 2>/dev/null && return 0
  apt-get update -q >/dev/null 2>&1 || true
  apt-cache show --no-all-versions "$@" 2>/dev/null \
    || die "apt does not know all of: $* (apt-get update failed or no Debian mirror is configured)"
}

# Prints "PACKAGE VERSION" (the candidate) for each package.
apt_versions() {
  apt_show "$@" | awk '/^Package: / { p = $2 } /^Version: / { print p, $2 }'
}

# Prints "PACKAGE VERSION" of the versioned kernel image that
# linux-image-amd64 depends on, e.g. "linux-image-6.1.0-56-amd64 6.1.192-2".
kernel_package() {
  local dep
  dep=$(apt_show linux-image-amd64 | sed -n 's/^Depends: //p' | tr ',' '\n' \
    | sed -n 's/^ *\(linux-image-[0-9][^ ]*\) *(= *\([^)]*\)).*/\1 \2/p' | head -n1)
  [[ -n $dep ]] || die "cannot resolve the kernel package behind linux-image-amd64"
  echo "$dep"
}

# Downloads package $1 at version $2 into directory $3 (a download cache kept
# between builds) unless it is there already; prints the .deb's path.
fetch_deb() {
  local pkg=$1 ver=$2 dir=$3 file
  file=$(apt-cache show "$pkg=$ver" 2>/dev/null | sed -n 's/^Filename: //p' | head -n1)
  [[ -n $file ]] || die "apt has no $pkg=$ver"
  file=$dir/$(basename "$file")
  # The pool file name escapes the epoch colon as %3a; apt-get download
  # writes it the same way.
  if [[ ! -s $file ]]; then
    mkdir -p "$dir"
    local log
    log=$(cd "$dir" && apt-get download -q "$pkg=$ver" 2>&1) \
      || die "apt-get download $pkg=$ver failed: $log"
    [[ -s $file ]] || die "apt-get download $pkg=$ver did not produce $file"
  fi
  echo "$file"
}

# Extracts the uncompressed ELF vmlinux from bzImage $1 into $2, the way the
# kernel's scripts/extract-vmlinux does: find each compressed-stream magic,
# decompress from there, keep the first result that is an ELF file. QEMU boots
# an ELF vmlinux through PVH, skipping the in-guest decompression (~4 s under
# TCG). Returns non-zero if no ELF was found.
extract_vmlinux() {
  local img=$1 out=$2 pos magic tag cmd
  # magic (as tr octal escapes), a placeholder string, the decompressor
  local -a methods=(
    '\3757zXZ\000' abcde 'xz -dc'
    '\050\265\057\375' xxxx 'zstd -dc'
    '\037\213\010' xy 'gzip -dc'
  )
  local i
  for ((i = 0; i < ${#methods[@]}; i += 3)); do
    magic=${methods[i]} tag=${methods[i + 1]} cmd=${methods[i + 2]}
    for pos in $(tr "${magic}\n${tag}" "\n${tag}=" <"$img" | grep -abo "^${tag}" | cut -d: -f1); do
      tail -c+"$pos" "$img" | $cmd >"$out" 2>/dev/null || true
      if file -b "$out" | grep -q '^ELF 64-bit'; then
        return 0
      fi
    done
  done
  rm -f "$out"
  return 1
}

# Kernel parameters that only make a boot faster under TCG (measured here:
# ~4 s less for the tiny guest): no crypto self-tests, no CPU vulnerability
# mitigations (test VMs), one UART, trust RDRAND, no IO-APIC timer check.
fast_boot_cmdline="cryptomgr.notests mitigations=off 8250.nr_uarts=1 random.trust_cpu=on no_timer_check"

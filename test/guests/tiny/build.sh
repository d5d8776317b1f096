#!/usr/bin/env bash
# Builds the tiny guest: Debian's kernel for direct boot plus an initramfs
# with busybox, dropbear, rsync, a sudo shim and the init in this folder.
#   build.sh inputs               print what the image is made of (for the stamp)
#   build.sh build OUT WORK DEBS  build into OUT, using WORK as scratch and
#                                 DEBS as the download cache
# Called by test/guests/build; see test/guests/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"

# Host binaries copied into the initramfs, with the packages they come from.
host_packages=(busybox-static dropbear-bin rsync)
host_binaries=(/bin/busybox /usr/sbin/dropbear /usr/bin/dropbearkey /usr/bin/dropbearconvert
  /usr/bin/rsync)
# Kernel modules to load at boot (their dependencies come along).
modules=(virtio_pci virtio_blk virtio_net isofs nls_utf8 button evdev
  pvpanic_mmio pvpanic_pci)

# Shared libraries the dynamic binaries need (absolute paths as ldd prints).
libraries() {
  local b
  for b in "${host_binaries[@]}"; do
    ldd "$b" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' || true
  done | sort -u
}

check_host() {
  need_cmd apt-get apt-cache dpkg-deb depmod modprobe cpio file ldd sha256sum
  local b
  for b in "${host_binaries[@]}"; do
    [[ -x $b ]] || die "$b is missing: run scripts/setup (packages ${host_packages[*]})"
  done
  file -b -L /bin/busybox | grep -q 'statically linked' \
    || die "/bin/busybox is not the static build: install busybox-static"
}

inputs() {
  check_host
  echo "kernel $(kernel_package)"
  dpkg-query -W -f='package ${Package} ${Version}\n' "${host_packages[@]}"
  local f
  for f in "${host_binaries[@]}" $(libraries); do
    echo "file $f $(sha256sum <"$(readlink -f "$f")" | cut -d' ' -f1)"
  done
  echo "modules ${modules[*]}"
}

# Copies host file $1 into the tree $2 at the same path (dereferenced).
copy_in() {
  local src=$1 root=$2
  mkdir -p "$root$(dirname "$src")"
  cp -L "$src" "$root$src"
}

build() {
  local out=$1 work=$2 debs=$3
  check_host
  mkdir -p "$out" "$work"

  local kpkg kver deb
  read -r kpkg kver <<<"$(kernel_package)"
  note "kernel package $kpkg $kver"
  deb=$(fetch_deb "$kpkg" "$kver" "$debs")
  note "unpacking $deb"
  dpkg-deb -x "$deb" "$work/kernel"
  local release
  release=$(basename "$(ls -d "$work"/kernel/lib/modules/*/)")
  [[ -f $work/kernel/boot/vmlinuz-$release ]] || die "no /boot/vmlinuz-$release in $deb"

  note "kernel $release: extracting the ELF vmlinux"
  if extract_vmlinux "$work/kernel/boot/vmlinuz-$release" "$out/vmlinux"; then
    note "vmlinux: $(file -b "$out/vmlinux" | cut -c1-60)"
  else
    note "no ELF vmlinux found in the bzImage; using the bzImage itself"
    cp "$work/kernel/boot/vmlinuz-$release" "$out/vmlinux"
  fi

  local root=$work/root
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,home,var,mnt}
  mkdir -p "$root"/etc/localvm "$root"/etc/dropbear "$root"/etc/acpi/PWRF
  ln -s ../run "$root/var/run"
  mkdir -p "$root/var/log"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  mknod -m 600 "$root/dev/console" c 5 1
  mknod -m 666 "$root/dev/null" c 1 3

  note "modules: ${modules[*]}"
  depmod -b "$work/kernel" "$release"
  local m line path list=()
  local deps
  for m in "${modules[@]}"; do
    deps=$(modprobe -d "$work/kernel" -S "$release" --show-depends "$m" 2>&1) \
      || die "kernel $release: no module $m: $deps"
    while read -r line; do
      case $line in
        insmod\ *)
          path=${line#insmod }
          path=${path%% *}
          path=${path#"$work/kernel"}
          [[ " ${list[*]} " == *" $path "* ]] || list+=("$path")
          ;;
      esac
    done <<<"$deps"
  done
  : >"$root/etc/localvm/modules"
  for path in "${list[@]}"; do
    mkdir -p "$root$(dirname "$path")"
    cp "$work/kernel$path" "$root$path"
    echo "$path" >>"$root/etc/localvm/modules"
  done

  note "busybox, dropbear, rsync and their libraries"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list-full); do
    [[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
  done
  # The sudo shim relies on busybox su, which must be setuid root; busybox
  # drops the privilege for every applet that does not need it.
  chmod 4755 "$root/bin/busybox"
  local f
  for f in /usr/sbin/dropbear /usr/bin/dropbearkey /usr/bin/dropbearconvert /usr/bin/rsync \
    $(libraries); do
    rm -f "$root$f"
    copy_in "$f" "$root"
  done
  # The ELF interpreter is found through /lib64 as well as /lib.
  [[ -e $root/lib64/ld-linux-x86-64.so.2 ]] || die "ld-linux-x86-64.so.2 was not copied"

  note "init, configuration"
  install -m 755 "$here/init" "$root/init"
  install -m 755 "$here/sudo" "$root/usr/bin/sudo"
  install -m 755 "$here/udhcpc.script" "$root/etc/localvm/udhcpc.script"
  install -m 755 "$here/power-button" "$root/etc/acpi/PWRF/00000080"
  install -m 755 "$here/cloud-init" "$root/usr/bin/cloud-init"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
debian:x:1000:1000:Debian:/home/debian:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$root/etc/shadow" <<'EOF'
root::19000:0:99999:7:::
debian:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
  chmod 600 "$root/etc/shadow"
  cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
sudo:x:27:debian
debian:x:1000:
nogroup:x:65534:
EOF
  printf '/bin/sh\n/bin/ash\n' >"$root/etc/shells"
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
  echo localhost >"$root/etc/hostname"
  cat >"$root/etc/inittab" <<'EOF'
# busybox init runs after /init has set the guest up; it only reaps
# processes and handles poweroff/reboot requests.
::ctrlaltdel:/bin/busybox poweroff -f
::shutdown:/bin/sync
EOF
  cat >"$root/etc/profile" <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
  mkdir -p "$root/home/debian"
  chown 1000:1000 "$root/home/debian"

  note "packing the initramfs"
  (cd "$root" && find . -print0 | LC_ALL=C sort -z \
    | cpio --null -o -H newc --quiet --reproducible >"$work/initrd.cpio")
  mv "$work/initrd.cpio" "$out/initrd.img"

  # panic=-1: reboot at once on a panic (QEMU with -no-reboot exits).
  echo "console=ttyS0 quiet panic=-1 $fast_boot_cmdline" >"$out/cmdline"
  echo "$release" >"$out/kernel-release"
  note "initrd $(du -h "$out/initrd.img" | cut -f1), vmlinux $(du -h "$out/vmlinux" | cut -f1)"
}

case ${1:-} in
  inputs) inputs ;;
  build) build "$2" "$3" "$4" ;;
  *) die "usage: $0 inputs | build OUT WORK DEBS" ;;
esac

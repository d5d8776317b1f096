#!/usr/bin/env bash
# Builds the cloud guest: a Debian bookworm root filesystem made by
# mmdebstrap with the real cloud-init, OpenSSH, rsync, sudo and the QEMU guest
# agent, as an ext4 filesystem (label `root`) on a whole qcow2 disk (no
# partition table), with the kernel and initrd beside it for direct boot.
# The cloud-efi guest puts the same filesystem into a partition of its GPT
# disk (test/guests/cloud-efi/build.sh).
#   build.sh inputs               print what the image is made of (for the stamp)
#   build.sh build OUT WORK DEBS  build into OUT, using WORK as scratch
# Called by test/guests/build; see test/guests/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"

suite=bookworm
# Besides Essential and apt (mmdebstrap --variant=apt).
packages=(linux-image-amd64 initramfs-tools systemd-sysv udev dbus
  cloud-init openssh-server sudo rsync qemu-guest-agent e2fsprogs iproute2 netbase procps)
# The virtual size of the disk; the filesystem fills it.
disk_size=4G

check_host() {
  need_cmd mmdebstrap mkfs.ext4 qemu-img apt-cache file
}

inputs() {
  check_host
  echo "suite $suite"
  echo "mmdebstrap $(dpkg-query -W -f='${Version}' mmdebstrap)"
  echo "e2fsprogs $(dpkg-query -W -f='${Version}' e2fsprogs)"
  apt_versions "${packages[@]}" | sed 's/^/package /'
  echo "disk $disk_size"
}

build() {
  local out=$1 work=$2
  check_host
  mkdir -p "$out" "$work"
  local rootfs=$work/rootfs

  note "mmdebstrap $suite: ${packages[*]}"
  # Setup hook: before anything is installed, keep the initramfs small and
  # tailored to virtio (initramfs-tools reads modules.d/ besides its own
  # /etc/initramfs-tools/modules conffile).
  # Customize hook: configure the image after everything is installed.
  mmdebstrap --mode=root --variant=apt --format=directory \
    --include="$(
      IFS=,
      echo "${packages[*]}"
    )" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='force-unsafe-io' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
    --setup-hook="cp '$here/initramfs.conf' \"\$1/etc/initramfs-tools/conf.d/localvm.conf\"" \
    --setup-hook="cp '$here/initramfs.modules' \"\$1/usr/share/initramfs-tools/modules.d/localvm\"" \
    --customize-hook="'$here/customize' \"\$1\"" \
    "$suite" "$rootfs"

  local vmlinuz initrd
  vmlinuz=$(ls "$rootfs"/boot/vmlinuz-* | head -n1)
  initrd=$(ls "$rootfs"/boot/initrd.img-* | head -n1)
  [[ -f $vmlinuz && -f $initrd ]] || die "no kernel or initrd in $rootfs/boot"
  note "kernel $(basename "$vmlinuz"): extracting the ELF vmlinux"
  if extract_vmlinux "$vmlinuz" "$out/vmlinux"; then
    note "vmlinux: $(file -b "$out/vmlinux" | cut -c1-60)"
  else
    note "no ELF vmlinux found in the bzImage; using the bzImage itself"
    cp "$vmlinuz" "$out/vmlinux"
  fi
  cp "$initrd" "$out/initrd.img"
  basename "$vmlinuz" | sed 's/^vmlinuz-//' >"$out/kernel-release"
  chroot "$rootfs" dpkg-query -W -f='${Package} ${Version}\n' >"$out/packages.txt"

  note "ext4 filesystem ($disk_size) from the tree"
  # The image's files only; the kernel and initrd stay on it too (small).
  mkfs.ext4 -q -F -L root -d "$rootfs" -E lazy_itable_init=0,lazy_journal_init=0 \
    "$work/disk.raw" "$disk_size"
  note "qcow2 (compressed, zstd)"
  # zstd: faster to write here and to read for every VM than zlib
  qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$work/disk.raw" "$out/disk.qcow2"
  rm -f "$work/disk.raw"

  echo "root=/dev/vda rw console=ttyS0 quiet $fast_boot_cmdline" >"$out/cmdline"
  note "disk.qcow2 $(du -h "$out/disk.qcow2" | cut -f1), initrd $(du -h "$out/initrd.img" | cut -f1)"
}

case ${1:-} in
  inputs) inputs ;;
  build) build "$2" "$3" "$4" ;;
  *) die "usage: $0 inputs | build OUT WORK DEBS" ;;
esac

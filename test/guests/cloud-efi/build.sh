#!/usr/bin/env bash
# Builds the cloud-efi guest: the cloud guest's filesystem in a GPT disk that
# UEFI firmware boots, shaped like Debian's genericcloud images: partition 15
# (first on the disk) an EFI system partition holding a standalone GRUB on the
# removable-media path EFI/BOOT/BOOTX64.EFI, partition 1 the ext4 root (the
# cloud guest's disk.qcow2, as it is) with the kernel and initramfs in /boot.
# GRUB's configuration is built into it: it finds the root filesystem by UUID
# and boots its kernel with root=PARTUUID=... console=ttyS0. No mounts, no
# loop devices: the FAT filesystem is made as a file (mkfs.fat -C, mtools),
# the partitions are written into the disk file at their offsets.
#   build.sh inputs               print what the image is made of (for the stamp)
#   build.sh build OUT WORK DEBS  build into OUT, using WORK as scratch
# Needs the cloud guest built in $LOCALVM_GUEST_CACHE (test/guests/build
# builds it first). Called by test/guests/build; see test/guests/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"

# Sizes in MiB. The ESP only holds GRUB (under 1 MiB) but is FAT32 (what the
# UEFI specification asks for; 64 MiB gives FAT32 enough clusters).
esp_start_mib=1
esp_mib=64
# GRUB modules in its memory disk (loaded on demand); the first list is
# linked into the core image.
grub_core_modules="part_gpt ext2"
grub_modules="part_gpt ext2 search search_fs_uuid linux normal echo test configfile"
# Partition types: EFI system, Linux root (x86-64).
esp_type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
root_type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709

cloud=${LOCALVM_GUEST_CACHE:?LOCALVM_GUEST_CACHE must name the guest cache}/cloud

check_host() {
  need_cmd grub-mkstandalone mkfs.fat mmd mcopy sfdisk qemu-img blkid
  [[ -d /usr/lib/grub/x86_64-efi ]] \
    || die "GRUB's x86_64-efi modules are missing: install grub-efi-amd64-bin (scripts/setup)"
}

inputs() {
  check_host
  [[ -f $cloud/stamp ]] || die "the cloud guest is not built in $cloud (test/guests/build cloud)"
  # The cloud guest's own stamp key covers its packages and scripts.
  echo "cloud $(head -n1 "$cloud/stamp")"
  local p
  for p in grub-efi-amd64-bin grub-common dosfstools mtools fdisk qemu-utils; do
    echo "host $p $(dpkg-query -W -f='${Version}' "$p")"
  done
  echo "esp $esp_start_mib $esp_mib"
}

build() {
  local out=$1 work=$2
  check_host
  mkdir -p "$out" "$work"
  local release fs_uuid part_uuid root_bytes
  release=$(cat "$cloud/kernel-release")
  root_bytes=$(qemu-img info --output=json "$cloud/disk.qcow2" \
    | sed -n 's/^ *"virtual-size": *\([0-9]*\).*/\1/p' | head -n1)
  [[ $root_bytes =~ ^[0-9]+$ ]] && ((root_bytes % 1048576 == 0)) \
    || die "cannot read the virtual size of $cloud/disk.qcow2 (or it is not whole MiB): '$root_bytes'"
  # The filesystem's UUID, for GRUB: read from its superblock (the first
  # MiB is enough).
  qemu-img dd -f qcow2 -O raw if="$cloud/disk.qcow2" of="$work/head.raw" bs=1M count=1
  fs_uuid=$(blkid -p -o value -s UUID "$work/head.raw")
  [[ -n $fs_uuid ]] || die "no filesystem UUID in $cloud/disk.qcow2"
  [[ $(blkid -p -o value -s LABEL "$work/head.raw") == root ]] \
    || die "the cloud guest's filesystem is not labelled 'root'"
  rm -f "$work/head.raw"
  part_uuid=$(cat /proc/sys/kernel/random/uuid)

  note "GRUB (standalone, x86_64-efi) for kernel $release, root fs $fs_uuid, partition $part_uuid"
  # timeout=0: no menu. Output goes to the firmware's console, which OVMF
  # puts on the serial port too.
  cat >"$work/grub.cfg" <<EOF
set timeout=0
search --no-floppy --fs-uuid --set=root $fs_uuid
linux /boot/vmlinuz-$release root=PARTUUID=$part_uuid rw console=ttyS0 quiet $fast_boot_cmdline
initrd /boot/initrd.img-$release
boot
EOF
  # Reproducible modulo the configuration: no locales, fonts or themes.
  # shellcheck disable=SC2086
  grub-mkstandalone -O x86_64-efi --modules="$grub_core_modules" \
    --install-modules="$grub_modules" --locales= --fonts= --themes= \
    -o "$work/BOOTX64.EFI" "boot/grub/grub.cfg=$work/grub.cfg"
  cp "$work/grub.cfg" "$out/grub.cfg"

  note "EFI system partition: FAT32, ${esp_mib} MiB, EFI/BOOT/BOOTX64.EFI"
  mkfs.fat -C -F 32 -n ESP "$work/esp.img" $((esp_mib * 1024)) >/dev/null
  mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
  mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

  # GPT: ESP first on the disk as partition 15, root after it as partition
  # 1, 1 MiB left at the end for the backup GPT.
  local root_start_mib=$((esp_start_mib + esp_mib)) root_mib=$((root_bytes / 1048576))
  local disk_mib=$((root_start_mib + root_mib + 1))
  note "GPT disk ${disk_mib} MiB: ESP at ${esp_start_mib} MiB, root (${root_mib} MiB) at ${root_start_mib} MiB"
  rm -f "$work/disk.raw"
  truncate -s "${disk_mib}M" "$work/disk.raw"
  (
    cd "$work"
    sfdisk -q disk.raw <<EOF
label: gpt
unit: sectors
first-lba: 2048
disk.raw15 : start=$((esp_start_mib * 2048)), size=$((esp_mib * 2048)), type=$esp_type, name="EFI System"
disk.raw1 : start=$((root_start_mib * 2048)), size=$((root_mib * 2048)), type=$root_type, uuid=$part_uuid, name="root"
EOF
  )
  dd if="$work/esp.img" of="$work/disk.raw" bs=1M seek="$esp_start_mib" conv=notrunc status=none
  # The root filesystem straight from the cloud guest's qcow2 into its
  # partition (sparse: only allocated clusters are written).
  qemu-img convert -n --target-image-opts -f qcow2 "$cloud/disk.qcow2" \
    "driver=raw,offset=$((root_start_mib * 1048576)),size=$root_bytes,file.driver=file,file.filename=$work/disk.raw"
  sfdisk -d "$work/disk.raw" >"$out/partitions.txt"

  note "qcow2 (compressed, zstd)"
  qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$work/disk.raw" "$out/disk.qcow2"
  rm -f "$work/disk.raw" "$work/esp.img"
  echo "$release" >"$out/kernel-release"
  cp "$cloud/packages.txt" "$out/packages.txt"
  note "disk.qcow2 $(du -h "$out/disk.qcow2" | cut -f1)"
}

case ${1:-} in
  inputs) inputs ;;
  build) build "$2" "$3" "$4" ;;
  *) die "usage: $0 inputs | build OUT WORK DEBS" ;;
esac

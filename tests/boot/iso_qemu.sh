#!/bin/sh
# iso_qemu.sh: the documented ISO path end to end: `shimcheck image`, tools/boot/mkiso.sh,
# then `qemu-system-i386 -cdrom` (SeaBIOS -> GRUB -> multiboot kernel + module), and the
# boot kernel's observations up to the end line with isa-debug-exit status 33.
#
#   iso_qemu.sh SHIMCHECK KERNEL MKISO SCENARIO
set -u
shimcheck=$1 kernel=$2 mkiso=$3 scenario=$4
command -v qemu-system-i386 >/dev/null || { echo "qemu-system-i386 not found: skipped"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/shimcheck-iso-test.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
"$shimcheck" image --scenario "$scenario" --out "$work/image.bin" || exit 1
sh "$mkiso" -o "$work/boot.iso" "$kernel" "$work/image.bin" || exit 1
timeout 60 qemu-system-i386 -accel tcg -cpu Penryn -m 128 -nodefaults -display none -no-reboot -monitor none \
	-cdrom "$work/boot.iso" -debugcon "file:$work/e9.log" -serial "file:$work/com1.log" \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 > "$work/qemu.out" 2>&1
rc=$?
cat "$work/e9.log"
[ $rc -eq 33 ] || { echo "iso_qemu.sh: QEMU exit status $rc, wanted 33 (isa-debug-exit 0x10)" >&2; cat "$work/qemu.out" >&2; exit 1; }
grep -q '"loader":"GRUB' "$work/e9.log" || { echo "iso_qemu.sh: not booted by GRUB" >&2; exit 1; }
[ "$(grep -c '"type":"observation","event":"round"' "$work/e9.log")" -ge 1 ] || { echo "iso_qemu.sh: no round trip observed" >&2; exit 1; }
grep -q '"type":"observation","event":"end"' "$work/e9.log" || { echo "iso_qemu.sh: no end observation" >&2; exit 1; }
cmp -s "$work/e9.log" "$work/com1.log" || { echo "iso_qemu.sh: COM1 and port 0xE9 differ" >&2; exit 1; }
exit 0

#!/bin/sh
# mkiso.sh: a BIOS-bootable GRUB ISO that boots the shimcheck boot kernel with an image.
#
#   tools/boot/mkiso.sh -o OUT.iso KERNEL.elf IMAGE.bin
#
# KERNEL.elf is build/tools/boot/kernel/kernel.elf; IMAGE.bin comes from
# `shimcheck image --out IMAGE.bin [--variant V] [--scenario S]`. The ISO boots on Bochs
# (which cannot load a multiboot ELF itself), on `qemu-system-i386 -cdrom OUT.iso`, and on a
# PC with a legacy BIOS. GRUB gets only the modules it needs (multiboot, normal,
# configfile): smaller and faster to build and to boot.
set -eu

usage() {
	echo "usage: $0 -o OUT.iso KERNEL.elf IMAGE.bin" >&2
	exit 2
}

out=
while getopts o: opt; do
	case $opt in
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] && [ -n "$out" ] || usage
kernel=$1
image=$2
for f in "$kernel" "$image"; do
	[ -r "$f" ] || { echo "$0: $f: cannot read" >&2; exit 2; }
done
command -v grub-mkrescue >/dev/null || { echo "$0: grub-mkrescue not found (Debian: grub-common, grub-pc-bin)" >&2; exit 3; }
command -v xorriso >/dev/null || { echo "$0: xorriso not found (Debian: xorriso)" >&2; exit 3; }
[ -d /usr/lib/grub/i386-pc ] || { echo "$0: GRUB's i386-pc platform is missing (Debian: grub-pc-bin)" >&2; exit 3; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/shimcheck-iso.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
root="$stage/iso" # the ISO's content; grub-mkrescue's log stays outside it
mkdir -p "$root/boot/grub"
cp "$kernel" "$root/boot/kernel.elf"
cp "$image" "$root/boot/image.bin"
# No menu, no waiting: boot the one entry at once.
cat > "$root/boot/grub/grub.cfg" <<'EOF'
set timeout=0
set default=0
menuentry "shimcheck boot" {
	multiboot /boot/kernel.elf
	module /boot/image.bin
	boot
}
EOF
if ! grub-mkrescue -d /usr/lib/grub/i386-pc --install-modules="multiboot normal configfile" \
	--fonts= --locales= --themes= -o "$out" "$root" > "$stage/mkrescue.log" 2>&1; then
	cat "$stage/mkrescue.log" >&2
	echo "$0: grub-mkrescue failed" >&2
	exit 3
fi

#!/bin/sh
# mkiso.sh: a BIOS-bootable GRUB ISO that boots the shimcheck boot kernel with an image.
#
#   tools/boot/mkiso.sh -o OUT.iso [-u] [-a KERNEL_ARGS] KERNEL.elf IMAGE.bin [IMAGE.bin...]
#
# KERNEL.elf is build/tools/boot/kernel/kernel.elf; IMAGE.bin comes from
# `shimcheck image --out IMAGE.bin [--variant V] [--scenario S]`. Several images make a batch:
# the kernel runs them one after the other in one boot. An IMAGE argument may carry that
# module's own arguments after a space ("image.bin dr0=0xc8801032"); -a gives the kernel's
# command line (arguments for every image). The ISO boots on Bochs
# (which cannot load a multiboot ELF itself), on `qemu-system-i386 -cdrom OUT.iso`, and on a
# PC with a legacy BIOS. GRUB gets only the modules it needs (multiboot, normal,
# configfile): smaller and faster to build and to boot.
#
# -u: a hybrid ISO that also boots under UEFI (GRUB's i386-efi and x86_64-efi platforms,
# Debian: grub-efi-ia32-bin, grub-efi-amd64-bin; where they are missing, a warning and a
# BIOS-only ISO). GRUB EFI loads the same multiboot kernel; there is no VGA text then, the
# kernel's output is on COM1 (and port 0xE9) only. ~5 MB instead of ~1 MB.
set -eu

usage() {
	echo "usage: $0 -o OUT.iso [-u] [-a KERNEL_ARGS] KERNEL.elf IMAGE.bin [IMAGE.bin...]" >&2
	exit 2
}

out=
kargs=
uefi=
while getopts o:a:u opt; do
	case $opt in
	o) out=$OPTARG ;;
	a) kargs=$OPTARG ;;
	u) uefi=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] && [ -n "$out" ] || usage
kernel=$1
shift
[ -r "$kernel" ] || { echo "$0: $kernel: cannot read" >&2; exit 2; }
case $kargs in *[!A-Za-z0-9=\ _.,x-]*) echo "$0: -a: only letters, digits, spaces and =_.,x- please" >&2; exit 2 ;; esac
command -v grub-mkrescue >/dev/null || { echo "$0: grub-mkrescue not found (Debian: grub-common, grub-pc-bin)" >&2; exit 3; }
command -v xorriso >/dev/null || { echo "$0: xorriso not found (Debian: xorriso)" >&2; exit 3; }
[ -d /usr/lib/grub/i386-pc ] || { echo "$0: GRUB's i386-pc platform is missing (Debian: grub-pc-bin)" >&2; exit 3; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/shimcheck-iso.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
root="$stage/iso" # the ISO's content; grub-mkrescue's log stays outside it
mkdir -p "$root/boot/grub"
cp "$kernel" "$root/boot/kernel.elf"
# Each distinct image file once (image.bin for the first, image1.bin, ... after it); a
# module line per IMAGE argument, in order.
modules=
n=0
: > "$stage/seen"
for arg in "$@"; do
	path=${arg%% *}
	margs=
	[ "$path" = "$arg" ] || margs=${arg#* }
	case $margs in *[!A-Za-z0-9=\ _.,x-]*) echo "$0: $arg: only letters, digits, spaces and =_.,x- in module arguments" >&2; exit 2 ;; esac
	[ -r "$path" ] || { echo "$0: $path: cannot read" >&2; exit 2; }
	name=$(awk -F '\t' -v p="$path" '$2 == p { print $1; exit }' "$stage/seen")
	if [ -z "$name" ]; then
		if [ $n -eq 0 ]; then name=image.bin; else name=image$n.bin; fi
		cp "$path" "$root/boot/$name"
		printf '%s\t%s\n' "$name" "$path" >> "$stage/seen"
		n=$((n + 1))
	fi
	modules="$modules	module /boot/$name${margs:+ $margs}
"
done
# No menu, no waiting: boot the one entry at once.
{
	printf 'set timeout=0\nset default=0\nmenuentry "shimcheck boot" {\n'
	printf '\tmultiboot /boot/kernel.elf%s\n' "${kargs:+ $kargs}"
	printf '%s' "$modules"
	printf '\tboot\n}\n'
} > "$root/boot/grub/grub.cfg"
# BIOS only: GRUB's i386-pc platform. Hybrid: every platform grub-mkrescue finds under
# /usr/lib/grub (i386-pc, i386-efi, x86_64-efi here), each with its own El Torito image.
platform="-d /usr/lib/grub/i386-pc"
if [ -n "$uefi" ]; then
	if [ -d /usr/lib/grub/x86_64-efi ] || [ -d /usr/lib/grub/i386-efi ]; then
		platform=
		command -v mformat >/dev/null || { echo "$0: -u: mformat not found (Debian: mtools)" >&2; exit 3; }
	else
		echo "$0: -u: GRUB's EFI platforms are missing (Debian: grub-efi-ia32-bin, grub-efi-amd64-bin): BIOS only" >&2
	fi
fi
# shellcheck disable=SC2086 # $platform is empty or two words on purpose
if ! grub-mkrescue $platform --install-modules="multiboot normal configfile" \
	--fonts= --locales= --themes= -o "$out" "$root" > "$stage/mkrescue.log" 2>&1; then
	cat "$stage/mkrescue.log" >&2
	echo "$0: grub-mkrescue failed" >&2
	exit 3
fi

#!/bin/sh
# compare.sh: `shimcheck compare LOG` on serial logs captured here from the ISO that `make
# iso` builds (tools/boot/shipped-iso.sh: every shipped scenario, hardened, so that every
# image passes), booted by SeaBIOS + GRUB (qemu-system-i386 -cdrom) or by OVMF + GRUB EFI.
#
#   compare.sh bios    SHIMCHECK KERNEL MKISO SCENARIO_DIR   the log compares identical: exit 0
#   compare.sh uefi    SHIMCHECK KERNEL MKISO SCENARIO_DIR   the same, booted by UEFI firmware
#   compare.sh tamper  SHIMCHECK KERNEL MKISO SCENARIO_DIR   one value in the log changed: exit 1,
#                                                            a DIVERGENCE naming that field
#   compare.sh garbage SHIMCHECK                             no kernel line at all, and a real
#                                                            log with one kernel line broken:
#                                                            exit 2, naming the file and line
# 77 when QEMU (or, for uefi, qemu-system-x86_64, OVMF or GRUB's EFI platform) is missing.
set -u
mode=$1 shimcheck=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/shimcheck-compare.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "compare.sh: $*" >&2; exit 1; }

# expect STATUS PATTERN LOG: run compare, check status and a line
expect() {
	out=$("$shimcheck" compare "$3" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ $rc -eq "$1" ] || fail "exit status $rc, wanted $1"
	printf '%s\n' "$out" | grep -Eq -- "$2" || fail "no line matches: $2"
}

capture() { # capture bios|uefi KERNEL MKISO SCENARIO_DIR -> $work/LOG
	kind=$1 kernel=$2 mkiso=$3 sdir=$4
	here=$(cd "$(dirname "$0")/../../tools/boot" && pwd)
	if [ "$kind" = uefi ]; then
		command -v qemu-system-x86_64 >/dev/null || { echo "skipped: qemu-system-x86_64 not found"; exit 77; }
		[ -r /usr/share/OVMF/OVMF_CODE.fd ] || { echo "skipped: /usr/share/OVMF/OVMF_CODE.fd missing (Debian: ovmf)"; exit 77; }
		[ -d /usr/lib/grub/x86_64-efi ] || { echo "skipped: GRUB's x86_64-efi platform missing (Debian: grub-efi-amd64-bin)"; exit 77; }
	else
		command -v qemu-system-i386 >/dev/null || { echo "skipped: qemu-system-i386 not found"; exit 77; }
	fi
	sh "$here/shipped-iso.sh" "$shimcheck" "$kernel" "$mkiso" "$sdir" "$work/shimcheck.iso" hardened > "$work/iso.out" 2>&1 ||
		{ cat "$work/iso.out"; fail "building the ISO failed"; }
	if [ "$kind" = uefi ]; then
		timeout 120 qemu-system-x86_64 -accel tcg -cpu Penryn -m 256 -nodefaults -display none -no-reboot -monitor none \
			-bios /usr/share/OVMF/OVMF_CODE.fd -cdrom "$work/shimcheck.iso" -serial "file:$work/LOG" \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 > "$work/qemu.out" 2>&1
	else
		timeout 60 qemu-system-i386 -accel tcg -cpu Penryn -m 256 -nodefaults -display none -no-reboot -monitor none \
			-cdrom "$work/shimcheck.iso" -serial "file:$work/LOG" \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 > "$work/qemu.out" 2>&1
	fi
	rc=$?
	[ $rc -eq 33 ] || { cat "$work/qemu.out"; fail "QEMU exit status $rc, wanted 33 (the kernel's end)"; }
	images=$(grep -c '^  scenario=' "$work/iso.out")
}

case $mode in
bios | uefi)
	capture "$mode" "$3" "$4" "$5"
	grep -q '"loader":"GRUB' "$work/LOG" || fail "not booted by GRUB"
	expect 0 "^COMPARE: .*: $images images: $images identical to the simulator .*, 0 differ, 0 not comparable" "$work/LOG"
	;;
tamper)
	capture bios "$3" "$4" "$5"
	# image 1's first round trip: ecx's value replaced
	awk '/"type":"image","index":"0x1"/ { img = 1 } img && /"event":"round"/ && !done { sub(/"ecx":"0x[0-9a-f]*"/, "\"ecx\":\"0xbad\""); done = 1 } { print }' \
		"$work/LOG" > "$work/LOG.tampered"
	cmp -s "$work/LOG" "$work/LOG.tampered" && fail "nothing was changed"
	expect 1 "^DIVERGENCE at observation 1 \(round 1\): ecx: log 0xbad, unicorn 0x" "$work/LOG.tampered"
	;;
garbage)
	head -c 3000 /dev/urandom > "$work/random.log"
	printf 'GRUB loading.\nWelcome to GRUB!\n' >> "$work/random.log"
	expect 2 "random.log:[0-9]+: not a boot log of shimcheck's kernel" "$work/random.log"
	printf '%s\n' '{"type":"boot","kernel":"shimcheck-boot","loader":"GRUB 2.06","cpu_vendor":"GenuineIntel","cpu_signature":"0x10673"}' \
		'{"type":"image","index":"0x0","count":"0x1","args":"/boot/image.bin scenario=default variant=hardened","image_sum":"0x1"}' \
		'{"type":"observation","event":"entry","cr0":"0x80010031","cr3":0x40b000}' > "$work/broken.log"
	expect 2 "broken.log:3: a kernel line that does not parse" "$work/broken.log"
	;;
*) echo "usage: compare.sh bios|uefi|tamper|garbage SHIMCHECK [KERNEL MKISO SCENARIO_DIR]" >&2; exit 2 ;;
esac
exit 0

#!/bin/sh
# patched.sh: `shimcheck boot` on a code directory whose host_main was changed on purpose,
# for the paths the shipped code never takes: an exception in the host world (the boot
# kernel's host-IDT gates), a divergence between an engine and Unicorn, and a stale global
# translation that only an engine with global TLB entries shows.
#
#   patched.sh PATCH VARIANT SHIMDIR STATUS PATTERN COMMAND...
#
# Copies SHIMDIR/VARIANT, replaces the first instruction of host_loop (which must still be
# `mov ebx, 0xA5A50002`, bb 02 00 a5 a5, or this fails instead of patching the wrong
# bytes), then runs `expect.sh STATUS PATTERN COMMAND... --code-dir COPY`.
#
# PATCH pf:       mov eax, [0]             a #PF (read, not present, CR2 0) in the host space
# PATCH observer: mov ebx, [ebp + 0x0c]    EBX = PB_OBSERVER: the observer's address on the
#                                          engine, 0 in Unicorn (whose PB_OBSERVER is 0)
# PATCH global:   mov [0xC0400000], eax    the host writes through its global mapping of
#                                          0xC0400000 (tests/findings/global-host-page.json),
#                                          so a global TLB entry for it exists at MOV CR3
set -u
patch=$1 variant=$2 shimdir=$3 status=$4 pattern=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/shimcheck-patched.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cp -r "$shimdir/$variant" "$work/code" || exit 1
off=$(grep -o '"host_loop": *[0-9]*' "$work/code/manifest.json" | grep -o '[0-9]*$')
[ -n "$off" ] || { echo "patched.sh: no host_loop symbol in the manifest" >&2; exit 1; }
was=$(od -An -tx1 -j "$off" -N 5 "$work/code/host.bin" | tr -d ' \n')
[ "$was" = "bb0200a5a5" ] || { echo "patched.sh: host_loop starts with $was, not mov ebx, 0xA5A50002" >&2; exit 1; }
case $patch in
pf) bytes='\241\000\000\000\000' ;;       # a1 00 00 00 00
observer) bytes='\213\135\014\220\220' ;; # 8b 5d 0c 90 90
global) bytes='\243\000\000\100\300' ;;   # a3 00 00 40 c0
*) echo "patched.sh: unknown patch $patch" >&2; exit 1 ;;
esac
printf "$bytes" | dd of="$work/code/host.bin" bs=1 seek="$off" conv=notrunc status=none || exit 1
"$here/expect.sh" "$status" "$pattern" "$@" --code-dir "$work/code"

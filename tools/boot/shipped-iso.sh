#!/bin/sh
# shipped-iso.sh: the ISO of every shipped scenario with every variant that accepts it, as
# one batch: what `make iso` (the boot_iso target) builds for a PC.
#
#   tools/boot/shipped-iso.sh SHIMCHECK KERNEL.elf MKISO SCENARIO_DIR OUT.iso [VARIANT...]
#
# VARIANTs default to literal and hardened. Each image's module string names its scenario
# (the file's base name) and variant, and the kernel prints it with the image's checksum on
# the image line: `shimcheck compare LOG` finds the scenario from that. A scenario a variant
# rejects (`shimcheck image` exit 2, e.g. modes.json with literal) is left out, said on stderr.
# The ISO is hybrid (BIOS and UEFI, mkiso.sh -u). Prints what it holds, then its path.
set -u
[ $# -ge 5 ] || { echo "usage: $0 SHIMCHECK KERNEL.elf MKISO SCENARIO_DIR OUT.iso [VARIANT...]" >&2; exit 2; }
shimcheck=$1 kernel=$2 mkiso=$3 sdir=$4 out=$5
shift 5
[ $# -gt 0 ] || set -- literal hardened
work=$(mktemp -d "${TMPDIR:-/tmp}/shimcheck-shipped.XXXXXX") || exit 3
trap 'rm -rf "$work"' EXIT INT TERM
list="$work/images"
: > "$list"
n=0
for variant in "$@"; do
	for s in "$sdir"/*.json; do
		[ -r "$s" ] || continue
		name=$(basename "$s" .json)
		img="$work/$variant-$name.bin"
		if "$shimcheck" image --variant "$variant" --scenario "$s" --out "$img" > "$work/image.out" 2>&1; then
			printf '%s scenario=%s variant=%s\n' "$img" "$name" "$variant" >> "$list"
			n=$((n + 1))
		else
			rc=$?
			[ $rc -eq 2 ] || { cat "$work/image.out" >&2; echo "$0: shimcheck image failed ($rc) on $s" >&2; exit 3; }
			echo "$0: $variant rejects $name, left out: $(tail -n1 "$work/image.out")" >&2
		fi
	done
done
[ $n -gt 0 ] || { echo "$0: no image" >&2; exit 3; }
# one IMAGE argument per line, each "file args" (mkiso.sh splits at the first space)
set --
while IFS= read -r line; do set -- "$@" "$line"; done < "$list"
sh "$mkiso" -u -o "$out" "$kernel" "$@" || exit 3
printf '%s\n' "$@" | sed 's|^[^ ]* |  |'
echo "$out: $n images (BIOS and UEFI; output on COM1 115200 8N1 and port 0xE9)"

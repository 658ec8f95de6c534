#!/bin/sh
# gdb-nonmi.sh: a gdb for `shimcheck boot --nmi` (SHIMCHECK_GDB) that runs the script without
# its `monitor nmi`, as a QEMU whose monitor command reached no CPU would behave: the run ends
# normally, no NMI is taken, and the tool must say so (exit 1, a FIRST DISAGREEMENT line).
set -u
script=
for a in "$@"; do script=$a; done
tmp=$(mktemp) || exit 3
sed '/^monitor nmi$/d' "$script" >"$tmp"
n=$#
i=0
for a in "$@"; do
	i=$((i + 1))
	[ $i -eq $n ] && a=$tmp
	set -- "$@" "$a"
done
shift $n
gdb "$@"
rc=$?
rm -f "$tmp"
exit $rc

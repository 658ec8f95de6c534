# boundaries.sh: sourced by window.sh and nmi.sh (set `me` and `usage` first). Reads the
# expectations up to "--", runs the command after it, passes 77 through (engine missing:
# skipped), and insists on exit 0 and a summary line with 0 disagreements. Leaves the
# expectations, one per line, in $exp and the command's output in $out.
exp=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	exp="$exp$1
"
	shift
done
[ $# -gt 1 ] || { echo "usage: $usage" >&2; exit 2; }
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "$me: exit status $rc, wanted 0 (every tested boundary agrees)" >&2; exit 1; }
printf '%s\n' "$out" | grep -Eq '^[0-9]+ boundaries tested on [a-z]+, [0-9]+ agree with the prediction, 0 do not' ||
	{ echo "$me: no summary line with 0 disagreements" >&2; exit 1; }

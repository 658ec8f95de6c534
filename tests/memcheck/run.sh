#!/bin/sh
# run.sh SUPPRESSIONS PROGRAM [ARGS...]: PROGRAM under valgrind memcheck. Fails on any
# memory error and on definite leaks; exits 77 (ctest: skipped) when valgrind is missing.
supp=$1
shift
if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind is not installed: skipped"
	exit 77
fi
# --smc-check=all: Unicorn generates and patches host code at run time.
exec valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	--smc-check=all --num-callers=30 --suppressions="$supp" "$@"

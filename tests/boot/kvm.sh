#!/bin/sh
# kvm.sh: the KVM tests share one look at whether this machine's KVM can run the images.
#
#   kvm.sh probe STATUSFILE COMMAND...   run COMMAND (shimcheck boot --engine kvm on the
#                                        default scenario), write its exit status and its
#                                        reason to STATUSFILE; exit 0 (a fixture: it only looks)
#   kvm.sh gate STATUSFILE TEST...       exit 77 when the probe's status was 77 (no usable KVM:
#                                        /dev/kvm absent or unopenable, QEMU refusing KVM, or a KVM
#                                        that cannot run 32-bit paging), naming the reason; else run
#                                        TEST... (e.g. expect.sh ...) and pass its status through
#
# A KVM boot costs seconds where KVM cannot run the images (here: ~5 s before the kernel's
# #GP), so it is paid once, not per test.
set -u
mode=$1 status=$2
shift 2
case $mode in
probe)
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	{ echo "$rc"; printf '%s\n' "$out" | grep -m1 'engine unavailable' || true; } > "$status"
	exit 0
	;;
gate)
	[ -r "$status" ] || { echo "kvm.sh: no probe result in $status (the boot_kvm_probe fixture did not run)" >&2; exit 1; }
	if [ "$(head -n1 "$status")" = 77 ]; then
		echo "skipped: $(sed -n 2p "$status")"
		exit 77
	fi
	"$@"
	exit $?
	;;
*) echo "usage: kvm.sh probe|gate STATUSFILE COMMAND..." >&2; exit 2 ;;
esac

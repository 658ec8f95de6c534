/*
 * diff.h: where two runs part ways.
 *
 * trace_diff() reads two JSONL traces (`shimcheck run --trace X.jsonl`, docs/trace-format.md)
 * and prints the header fields that differ, the first instruction at which they differ
 * (with the differing fields and the neighbouring instructions of both side by side), the
 * first instruction at which control flow differs (eip/bytes/text/space/cr3), the first
 * difference in the sequence of events (kinds and values, wherever they happen), the
 * violations only one side has, and a summary (instructions, events per kind, violations
 * per rule on each side).
 *
 * variant_diff() compares two runs already in memory, e.g. literal and hardened on one
 * scenario: per switch window, the switch events of both in order, side by side, the events
 * between the windows (the monitor prologue's PTE write and INVLPG, the guest), and each
 * side's violations.
 */
#ifndef SHIMCHECK_TOOLS_DIFF_H
#define SHIMCHECK_TOOLS_DIFF_H

#include <stdio.h>

#include "pipeline.h"

/* 0: identical; 1: different (the differences printed); 2: an input cannot be read or is
 * not a trace (one line "FILE:LINE: what" printed on out, nothing else). */
int trace_diff(FILE *out, const char *a_jsonl, const char *b_jsonl);

/* 0: the two runs have the same switch-event kinds in the same order in every window,
 * and violate the same rules; 1 otherwise. Both pipelines must have run (pl_run). */
int variant_diff(FILE *out, struct pipeline *a, struct pipeline *b);

#endif

/*
 * report.h: what a person or a tool reads: the verdict, the review trace, the JSONL trace.
 */
#ifndef SHIMCHECK_TOOLS_REPORT_H
#define SHIMCHECK_TOOLS_REPORT_H

#include <stdio.h>

#include "pipeline.h"

struct report_ctx {
	const struct pipeline *p;
	const char *scenario_path;
	const char *code_dir;
};

/* One line per violation ("RULE #insn 0xeip: message"), then one summary line. */
void report_verdict_text(FILE *f, const struct report_ctx *r);
/* A single JSON object (the --json summary). */
void report_verdict_json(FILE *f, const struct report_ctx *r, int status);
/* The review dump: address, bytes, disassembly, state changes, memory, verdicts inline. */
void report_trace_text(FILE *f, const struct report_ctx *r);
/* The versioned JSONL trace (docs/trace-format.md). Returns 0, or -1 on a write error. */
int report_trace_jsonl(FILE *f, const struct report_ctx *r);

#endif

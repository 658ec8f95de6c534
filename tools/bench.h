#ifndef SHIMCHECK_TOOLS_BENCH_H
#define SHIMCHECK_TOOLS_BENCH_H
#include "pipeline.h"
/* Time the loaded pipeline for about `seconds`; print the table and the final line. */
int bench_run(struct pipeline *p, double seconds, const char *scenario_path);
#endif

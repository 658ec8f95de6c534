#ifndef SHIMCHECK_TOOLS_MUTATE_CMD_H
#define SHIMCHECK_TOOLS_MUTATE_CMD_H
#include "pipeline.h"
/* Run the automatic mutants of p's code; print the table. Returns the exit status. */
int mutate_run(struct pipeline *p, const char *source_dir);
#endif

/*
 * fuzz_pipeline: libFuzzer entry for the whole path scenario -> image -> Unicorn -> checks
 * on the hardened variant, one pipeline (and engine) reused across inputs (fuzz_common.c).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	int rc = fz_pipeline_init(true);
	if (rc)
		exit(rc);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_pipeline_one(data, size);
	return 0;
}

/*
 * fuzz_manifest: libFuzzer entry for code_load on an arbitrary manifest.json, in a private
 * code directory made once at start-up (fuzz_common.c).
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
	if (!fz_manifest_init())
		exit(2);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_manifest_one(data, size);
	return 0;
}

/*
 * fuzz_scenario: libFuzzer entry for scenario_parse on arbitrary bytes, with the
 * to_json -> parse round trip checked on every accepted scenario (fuzz_common.c).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_scenario_one(data, size);
	return 0;
}

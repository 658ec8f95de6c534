/*
 * fuzz_bootlog: libFuzzer entry for the boot-log readers (tools/boot/boot_log.c): the serial
 * log of `shimcheck compare`, the kernel's lines in an engine's stream, QEMU's and Bochs's
 * logs. The decoder and its checks are in bootlog_decoder.c.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_bootlog_one(data, size);
	return 0;
}

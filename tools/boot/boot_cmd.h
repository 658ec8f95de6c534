/*
 * boot_cmd.h: `shimcheck boot`, the image on a second engine (QEMU TCG or Bochs) booted by
 * the boot kernel (tools/boot/kernel/), compared with the simulator. See docs/hardware.md.
 */
#ifndef SHIMCHECK_TOOLS_BOOT_CMD_H
#define SHIMCHECK_TOOLS_BOOT_CMD_H

#include <stddef.h>

/*
 * shimcheck boot --engine qemu|bochs [--scenario FILE] [--variant NAME | --code-dir DIR]
 *                [--timeout SECONDS] [--keep DIR] [--kernel FILE] [--verbose]
 *
 * argv[0] is the command's name ("boot"); options start at argv[1], so shimcheck's main
 * calls boot_main(argc - 1, argv + 1). (A leading "boot" in argv[1] is skipped as well, so
 * boot_main(argc, argv) works too.)
 *
 * Exit status: 0 every observation matches the simulator and the simulator found no
 * violation; 1 a divergence (a line starting with "DIVERGENCE") or a violation; 2 bad
 * input (command line, scenario, code directory, or an image the boot kernel refuses);
 * 3 internal error (the engine or a tool failed); 77 the engine's binary is missing.
 */
int boot_main(int argc, char **argv);

/*
 * shimcheck compare LOG [--scenarios DIR] [--scenario FILE --variant NAME] [--verbose]
 *
 * A serial log of the boot kernel against the simulator (boot_compare.c). Same argv
 * convention and exit statuses as boot_main; 2 also for a log that does not parse (the
 * message names the file and the line).
 */
int compare_main(int argc, char **argv);

/* Where the built variants are: build/shim next to the running binary, else the build tree
 * CMake configured. Shared by every shimcheck command. */
void shim_root(char *out, size_t n);

#endif

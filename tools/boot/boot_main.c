/*
 * boot_main.c: `shimcheck-boot`, the boot command as a program of its own
 * (shimcheck-boot ARGS... is shimcheck boot ARGS...).
 */
#include "boot_cmd.h"

int main(int argc, char **argv) { return boot_main(argc, argv); }

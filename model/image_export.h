/*
 * image_export.h: the physical image as one file, for engines that are not linked in
 * (the boot kernel on QEMU, Bochs, KVM and real hardware).
 *
 * Layout (little-endian, offsets in bytes):
 *   0  "SHIMIMG1"            8  u32 version (1)       12 u32 header size (IMGX_HDR_SIZE)
 *  16  u64 window base      24  u64 window size      32 u64 data bytes that follow the header
 *                                                        (they belong at window base; the rest
 *                                                        of the window is zero)
 *  40  u32 cr0  44 cr3  48 cr4  52 efer (low half)
 *  56  u32 gdtr base  60 u16 gdtr limit  62 u16 0
 *  64  u32 idtr base  68 u16 idtr limit  70 u16 0
 *  72  u16 cs ss ds es fs gs tr 0         (selectors of the initial host state)
 *  88  u32 eip  92 esp  96 eflags
 * 100  u32 physical address of the host TSS descriptor (busy in the image: clear it, then LTR)
 * 104  u32 linear host_done  108 linear host_after_call  112 linear host code page
 * 116  u32 physical host code page  120 u32 host.bin size  124 u32 round trips
 * 128  u32 shim linear  132 shim physical  136 host CR3  140 monitor CR3
 * 144  u32 shim-address entry physical address  148 u32 its size (4 or 8)
 * 152  ... reserved (zero) up to IMGX_HDR_SIZE
 */
#ifndef SHIMCHECK_MODEL_IMAGE_EXPORT_H
#define SHIMCHECK_MODEL_IMAGE_EXPORT_H

#include <stdio.h>

#include "image.h"

#define IMGX_MAGIC "SHIMIMG1"
#define IMGX_VERSION 1
#define IMGX_HDR_SIZE 256

/* Write img to f. Returns 0, or -1 on a write error. */
int image_export(const struct image *img, const struct shim_code *code, FILE *f);

#endif

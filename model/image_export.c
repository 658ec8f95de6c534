/*
 * image_export.c: the image as one file (see image_export.h for the layout).
 */
#include "image_export.h"

#include <string.h>

int image_export(const struct image *img, const struct shim_code *code, FILE *f)
{
	uint8_t h[IMGX_HDR_SIZE];
	memset(h, 0, sizeof h);
	const struct cpu_state *c = &img->init;
	uint64_t used = img->next_free - img->pm.base;
	memcpy(h, IMGX_MAGIC, 8);
	put4(h + 8, IMGX_VERSION);
	put4(h + 12, IMGX_HDR_SIZE);
	put8(h + 16, img->pm.base);
	put8(h + 24, img->pm.size);
	put8(h + 32, used);
	put4(h + 40, c->cr0);
	put4(h + 44, c->cr3);
	put4(h + 48, c->cr4);
	put4(h + 52, (uint32_t)c->efer);
	put4(h + 56, c->gdtr.base);
	put2(h + 60, c->gdtr.limit);
	put4(h + 64, c->idtr.base);
	put2(h + 68, c->idtr.limit);
	const uint16_t sel[7] = {c->cs.sel, c->ss.sel, c->ds.sel, c->es.sel, c->fs.sel, c->gs.sel, c->tr.sel};
	for (int i = 0; i < 7; i++)
		put2(h + 72 + 2 * i, sel[i]);
	put4(h + 88, c->eip);
	put4(h + 92, c->esp);
	put4(h + 96, c->eflags);
	put4(h + 100, (uint32_t)img->w[SP_HOST].tss_desc_pa);
	put4(h + 104, img->ep[EP_HOST_DONE]);
	put4(h + 108, img->ep[EP_HOST_AFTER_CALL]);
	put4(h + 112, img->ep[EP_HOST_MAIN] & 0xFFFFF000u);
	put4(h + 116, (uint32_t)img->w[SP_HOST].obj_pa[OBJ_CODE]);
	put4(h + 120, (uint32_t)code->bin[CB_HOST].size);
	put4(h + 124, img->rounds);
	put4(h + 128, img->shim_lin);
	put4(h + 132, (uint32_t)img->shim_pa);
	put4(h + 136, img->w[SP_HOST].regs.cr3);
	put4(h + 140, img->w[SP_MON].regs.cr3);
	put4(h + 144, (uint32_t)img->shim_pte_pa);
	put4(h + 148, img->pte_size);
	if (fwrite(h, 1, sizeof h, f) != sizeof h)
		return -1;
	if (fwrite(img->pm.bytes, 1, (size_t)used, f) != used)
		return -1;
	return 0;
}

#include <stdio.h>
#include "engine.h"
int main(int argc, char **argv)
{
	(void)argc;
	struct scenario sc; struct sc_error err;
	if (scenario_load(argv[1], &sc, &err) != SC_OK) { printf("%s: %s: %s\n", argv[1], err.field, err.detail); return 2; }
	struct shim_code code; char e[512];
	if (!code_load(argv[2], &code, e, sizeof e)) { printf("%s\n", e); return 2; }
	struct image img;
	if (image_build(&sc, &code, &img, &err) != SC_OK) { printf("image: %s: %s\n", err.field, err.detail); return 2; }
	struct engine *en = engine_open(e, sizeof e);
	if (!en) { printf("%s\n", e); return 3; }
	if (!engine_load(en, &img, e, sizeof e)) { printf("load: %s\n", e); return 3; }
	struct trace t; trace_init(&t);
	struct run_limits lim = {0, 0, true};
	engine_run(en, &t, &lim);
	printf("end %s: %s; %u insns %u mem %u ev\n", tr_end_name(t.end), t.end_detail, t.n, t.nmem, t.nev);
	for (uint32_t i = 0; i < t.n; i++) {
		struct tr_insn *in = &t.insn[i];
		printf("%4u %08x cr3=%08x tr=%04x sp=%d ", i, in->cpu.eip, in->cpu.cr3, in->cpu.tr, in->space);
		for (int b = 0; b < in->len; b++) printf("%02x", in->bytes[b]);
		for (uint32_t k = 0; k < in->ev_n; k++) { struct tr_event *ev = &t.ev[in->ev_first + k]; printf(" [%s %llx %llx %llx]", ev_name(ev->kind), (unsigned long long)ev->a, (unsigned long long)ev->b, (unsigned long long)ev->c); }
		for (uint32_t k = 0; k < in->mem_n; k++) { struct tr_mem *m = &t.mem[in->mem_first + k]; printf(" %c%llx%s", m->write?'W':'R', (unsigned long long)m->pa, m->lin_known?"":"?"); }
		printf("\n");
	}
	return 0;
}

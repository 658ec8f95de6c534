/*
 * mmu.h: i386 control-register, paging and descriptor constants, with Intel's names.
 *
 * Everything that the model writes into guest memory is built from these with explicit
 * shifts and masks; nothing here is a C bitfield overlaid on guest bytes.
 */
#ifndef SHIMCHECK_MODEL_MMU_H
#define SHIMCHECK_MODEL_MMU_H

#include <stdint.h>

/* Control register bits (SDM vol. 3, 2.5). */
#define CR0_PE 0x00000001u /* protection enable */
#define CR0_MP 0x00000002u
#define CR0_ET 0x00000010u /* always 1 on anything after the 386 */
#define CR0_NE 0x00000020u
#define CR0_WP 0x00010000u /* supervisor writes honour R/W=0 */
#define CR0_AM 0x00040000u
#define CR0_NW 0x20000000u
#define CR0_CD 0x40000000u
#define CR0_PG 0x80000000u

#define CR4_PSE 0x00000010u /* 4 MiB pages in 32-bit paging */
#define CR4_PAE 0x00000020u
#define CR4_PGE 0x00000080u /* global pages survive MOV CR3 */

#define EFER_NXE 0x00000800u

#define FL_IF 0x00000200u /* EFLAGS.IF */
#define FL_RESERVED1 0x00000002u /* EFLAGS bit 1 always reads 1 */

/* Page-table entry bits, common to 32-bit and PAE entries (low dword). */
#define PTE_P 0x001u   /* present */
#define PTE_W 0x002u   /* writable */
#define PTE_U 0x004u   /* user */
#define PTE_PWT 0x008u
#define PTE_PCD 0x010u
#define PTE_A 0x020u   /* accessed */
#define PTE_D 0x040u   /* dirty */
#define PTE_PS 0x080u  /* in a PDE: this entry maps a large page */
#define PTE_G 0x100u   /* global (PTEs, and PDEs with PS=1) */
#define PTE_PAT_LARGE 0x1000u /* PAT bit of a large-page PDE */
#define PTE_NX_HI 0x80000000u /* PAE: execute-disable, bit 63 = bit 31 of the high dword */

#define PGSIZE 4096u
#define PGSHIFT 12
#define PGMASK 0xFFFFF000u
#define PSE_SIZE (4u << 20)  /* 32-bit paging large page */
#define PAE_LARGE (2u << 20) /* PAE large page */

/* 32-bit paging: 10 + 10 + 12. */
#define PDX(la) (((uint32_t)(la) >> 22) & 0x3FFu)
#define PTX(la) (((uint32_t)(la) >> 12) & 0x3FFu)
/* PAE paging: 2 + 9 + 9 + 12. */
#define PAE_PDPX(la) (((uint32_t)(la) >> 30) & 0x3u)
#define PAE_PDX(la) (((uint32_t)(la) >> 21) & 0x1FFu)
#define PAE_PTX(la) (((uint32_t)(la) >> 12) & 0x1FFu)
#define PAE_ADDR_MASK 0x000FFFFFFFFFF000ull /* bits 51:12 of a PAE entry */
#define PAE_PDPTE_RSVD 0x1E6u /* PDPTE bits 1,2,5,6,7,8 are reserved (must be 0) */

/* Page-fault error code bits. */
#define PFEC_P 0x01u  /* protection violation (else: not present) */
#define PFEC_W 0x02u  /* write access */
#define PFEC_U 0x04u  /* user mode */
#define PFEC_RSVD 0x08u
#define PFEC_I 0x10u  /* instruction fetch (only with NXE) */

/* Exception vectors used by the model and the checkers. */
#define T_DE 0
#define T_DB 1
#define T_NMI 2
#define T_BP 3
#define T_UD 6
#define T_DF 8
#define T_TS 10
#define T_NP 11
#define T_SS 12
#define T_GP 13
#define T_PF 14

/* Descriptor types (S=0 system descriptors), SDM vol. 3, 3.5. */
#define STS_T16A 0x1u /* 16-bit TSS, available */
#define STS_LDT 0x2u
#define STS_T16B 0x3u
#define STS_CG16 0x4u
#define STS_TG 0x5u   /* task gate */
#define STS_IG16 0x6u
#define STS_TG16 0x7u
#define STS_T32A 0x9u /* 32-bit TSS, available */
#define STS_T32B 0xBu /* 32-bit TSS, busy */
#define STS_CG32 0xCu
#define STS_IG32 0xEu /* 32-bit interrupt gate */
#define STS_TG32 0xFu /* 32-bit trap gate */
#define STS_BUSY 0x2u /* the busy bit inside a TSS type */

/* Segment types (S=1 code/data descriptors). */
#define STA_A 0x1u  /* accessed */
#define STA_W 0x2u  /* data: writable */
#define STA_R 0x2u  /* code: readable */
#define STA_E 0x4u  /* data: expand down */
#define STA_C 0x4u  /* code: conforming */
#define STA_X 0x8u  /* executable */

/* Selector fields. */
#define SEL_RPL(s) ((s) & 0x3u)
#define SEL_TI 0x4u
#define SEL_INDEX(s) ((uint16_t)(s) & 0xFFF8u)

#endif

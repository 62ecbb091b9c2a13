/* The fake NVMe layer of the in-process client tests (fake_nvme.c). */
#ifndef NVD_TESTS_FAKE_NVME_H
#define NVD_TESTS_FAKE_NVME_H

#include "nvme/nvme.h"

#define FAKE_NLBA 2048u		/* 1 MiB of 512-byte blocks */
#define FAKE_MAX_PENDING 1024

struct fake_nvme {
	struct nvme_req *pending[FAKE_MAX_PENDING];	/* in submission order */
	unsigned npending;
	unsigned long submitted;
	int submit_error;	/* nvme_submit fails with this when set */
	int map_error;		/* vfio_dma_map fails with this when set */
	uint64_t next_iova;
	long maps, max_maps;	/* live DMA mappings, and the most at once */
	unsigned plugged;	/* nvme_qpair_plug depth */
	unsigned long doorbells;	/* unplugs that would ring */
};

extern struct fake_nvme fake_nvme;

struct nvme_ns *fake_nvme_ns(void);
/* Removes pending request i from the list without completing it. */
struct nvme_req *fake_nvme_take(unsigned i);
/* Completes pending request i (0 = oldest) with result (0 or -errno). */
int fake_nvme_complete(unsigned i, int result);
unsigned fake_nvme_complete_all(int result);

#endif

/* A fake NVMe layer for in-process tests of the client side (vblk and the
 * transports): the few nvme_* and vfio_* functions vblk.c calls, at link
 * time. Submitted requests wait in a list until the test completes them,
 * in any order and with any result; DMA mappings are counted, not made. */
#include "fake_nvme.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct nvme_ctrl {
	struct nvme_ctrl_info info;
};
struct nvme_ns {
	struct nvme_ns_info info;
};
struct nvme_qpair {
	int unused;
};
struct vfio_dev {
	int unused;
};

static struct nvme_ctrl ctrl = {
	.info = { .bdf = "0000:00:04.0", .serial = "FAKE", .page_size = 4096,
		  .max_xfer = 128 << 10, .vwc = true, .dsm = true, .write_zeroes = true,
		  .nr_io_queues = 1, .io_depth = 256 },
};
static struct nvme_ns ns = {
	.info = { .nsid = 1, .name = "FAKE:n1", .nlba = FAKE_NLBA, .lba_size = 512, .usable = true },
};
static struct nvme_qpair qp;
static struct vfio_dev vdev;

struct fake_nvme fake_nvme;

struct nvme_ns *fake_nvme_ns(void) { return &ns; }

struct nvme_ctrl *nvme_ns_ctrl(struct nvme_ns *n) { return n == &ns ? &ctrl : NULL; }
struct vfio_dev *nvme_ctrl_vfio(struct nvme_ctrl *c) { (void)c; return &vdev; }
const struct nvme_ctrl_info *nvme_ctrl_info(const struct nvme_ctrl *c) { return &c->info; }
const struct nvme_ns_info *nvme_ns_info(const struct nvme_ns *n) { return &n->info; }
unsigned nvme_ctrl_nr_qpairs(const struct nvme_ctrl *c) { (void)c; return 1; }
struct nvme_qpair *nvme_ctrl_qpair(struct nvme_ctrl *c, unsigned i) { (void)c; (void)i; return &qp; }

void nvme_qpair_plug(struct nvme_qpair *q)
{
	(void)q;
	fake_nvme.plugged++;
}

void nvme_qpair_unplug(struct nvme_qpair *q)
{
	(void)q;
	if (fake_nvme.plugged && !--fake_nvme.plugged)
		fake_nvme.doorbells++;
}

bool nvme_share_full(const struct nvme_qpair *q, const struct nvme_share *s)
{
	(void)q;
	(void)s;
	return false;
}

int nvme_submit(struct nvme_qpair *q, struct nvme_req *req)
{
	(void)q;
	if (fake_nvme.submit_error)
		return fake_nvme.submit_error;
	if (fake_nvme.npending == FAKE_MAX_PENDING)
		return -EAGAIN;
	fake_nvme.pending[fake_nvme.npending++] = req;
	fake_nvme.submitted++;
	return 0;
}

struct nvme_req *fake_nvme_take(unsigned i)
{
	struct nvme_req *r;

	if (i >= fake_nvme.npending)
		return NULL;
	r = fake_nvme.pending[i];
	memmove(&fake_nvme.pending[i], &fake_nvme.pending[i + 1],
		(fake_nvme.npending - i - 1) * sizeof(r));
	fake_nvme.npending--;
	return r;
}

int fake_nvme_complete(unsigned i, int result)
{
	struct nvme_req *r = fake_nvme_take(i);

	if (!r)
		return -ENOENT;
	r->result = result;
	r->status = result ? 0x281 : 0;	/* media: unrecovered read error */
	r->done(r);
	return 0;
}

unsigned fake_nvme_complete_all(int result)
{
	unsigned n = 0;

	while (fake_nvme.npending && fake_nvme_complete(0, result) == 0)
		n++;
	return n;
}

int vfio_dma_map(struct vfio_dev *dev, void *vaddr, size_t len, int prot, uint64_t *iova)
{
	(void)dev;
	(void)vaddr;
	(void)prot;
	if (fake_nvme.map_error)
		return fake_nvme.map_error;
	*iova = fake_nvme.next_iova;
	fake_nvme.next_iova += (len + 0xfffffull) & ~0xfffffull;
	fake_nvme.maps++;
	if (fake_nvme.maps > fake_nvme.max_maps)
		fake_nvme.max_maps = fake_nvme.maps;
	return 0;
}

int vfio_dma_unmap(struct vfio_dev *dev, uint64_t iova, size_t len)
{
	(void)dev;
	(void)iova;
	(void)len;
	fake_nvme.maps--;
	return 0;
}

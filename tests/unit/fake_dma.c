/* DMA for the fake controllers of test_qpair and test_ctrl: memory is its
 * own IOVA (the fake "device" reads and writes through the pointers), so
 * vfio_dma_* only allocate page-aligned, zeroed memory. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform/vfio.h"

#define PAGE 4096u

int vfio_dma_alloc(struct vfio_dev *dev, size_t len, struct dma_buf *buf)
{
	(void)dev;
	len = (len + PAGE - 1) & ~(size_t)(PAGE - 1);
	buf->va = aligned_alloc(PAGE, len);
	if (!buf->va)
		return -ENOMEM;
	memset(buf->va, 0, len);
	buf->iova = (uintptr_t)buf->va;
	buf->len = len;
	return 0;
}

void vfio_dma_free(struct vfio_dev *dev, struct dma_buf *buf)
{
	(void)dev;
	free(buf->va);
	buf->va = NULL;
}

void *vfio_iova_to_va(const struct vfio_dev *dev, uint64_t iova, size_t len)
{
	(void)dev;
	(void)len;
	return (void *)(uintptr_t)iova;
}

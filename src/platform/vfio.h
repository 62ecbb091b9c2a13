/* The platform layer: PCI functions driven through VFIO.
 *
 * Knows PCI and VFIO, nothing of NVMe. One vfio_dev per PCI function, each
 * with its own container (IOMMU domain) and IOVA space. Functions return
 * 0 or a negative errno and log a one-line reason naming the function. */
#ifndef NVD_PLATFORM_VFIO_H
#define NVD_PLATFORM_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vfio_dev;

/* A PCI function as sysfs shows it. */
struct pci_fn {
	char bdf[16];		/* "0000:00:04.0" */
	uint16_t vendor;
	uint16_t device;
	uint32_t class_code;	/* 24-bit class/subclass/prog-if */
	char driver[32];	/* "" when unbound */
	bool has_iommu_group;
};

#define PCI_CLASS_NVME 0x010802u

/* Lists PCI functions of class 010802 (NVMe) into out[max]; *n is the
 * number found (may exceed max). */
int pci_scan_nvme(struct pci_fn *out, size_t max, size_t *n);
/* Reads one function's sysfs entry; -ENOENT if there is none. */
int pci_fn_read(const char *bdf, struct pci_fn *out);
/* Canonicalises "0:4.0"/"00:04.0"/"0000:00:04.0" to "0000:00:04.0". */
int pci_bdf_parse(const char *s, char out[16]);

/* Opens the function: group, container (type1 IOMMU), device. Errors
 * explain what to do (module missing, not bound to vfio-pci, no IOMMU,
 * group not viable, permission). */
int vfio_open(const char *bdf, struct vfio_dev **out);
void vfio_close(struct vfio_dev *dev);
const char *vfio_name(const struct vfio_dev *dev);

int vfio_map_bar(struct vfio_dev *dev, unsigned bar, volatile void **addr, size_t *len);
int vfio_cfg_read(struct vfio_dev *dev, uint32_t off, void *buf, size_t len);
int vfio_cfg_write(struct vfio_dev *dev, uint32_t off, const void *buf, size_t len);
/* Sets Memory Space and Bus Master Enable in the command register. */
int vfio_enable_bus_master(struct vfio_dev *dev);
/* Clears Bus Master Enable: the function can start no more DMA. The last
 * resort for a device that cannot otherwise be stopped. */
int vfio_disable_bus_master(struct vfio_dev *dev);

/* DMA: maps [vaddr, vaddr+len) (page-aligned) for the device at an IOVA
 * of the layer's choosing. prot is VFIO_DMA_READ|VFIO_DMA_WRITE: READ lets
 * the device read the memory, WRITE lets it write. */
enum { VFIO_DMA_READ = 1, VFIO_DMA_WRITE = 2 };
int vfio_dma_map(struct vfio_dev *dev, void *vaddr, size_t len, int prot, uint64_t *iova);
int vfio_dma_unmap(struct vfio_dev *dev, uint64_t iova, size_t len);
/* The process address of [iova, iova+len) when that range lies inside one
 * live mapping, else NULL. A linear search: for bounce buffers, the slow
 * path, not for every request. */
void *vfio_iova_to_va(const struct vfio_dev *dev, uint64_t iova, size_t len);

/* DMA-able memory owned by the driver: zeroed, page-aligned, mapped
 * read-write at buf->iova. */
struct dma_buf {
	void *va;
	uint64_t iova;
	size_t len;
};
int vfio_dma_alloc(struct vfio_dev *dev, size_t len, struct dma_buf *buf);
void vfio_dma_free(struct vfio_dev *dev, struct dma_buf *buf);

/* Interrupts, delivered as eventfds. */
enum vfio_irq_mode { VFIO_IRQ_NONE, VFIO_IRQ_INTX, VFIO_IRQ_MSI, VFIO_IRQ_MSIX };
const char *vfio_irq_mode_name(enum vfio_irq_mode m);
#define VFIO_IRQ_ALLOW(m) (1u << (m))
#define VFIO_IRQ_ALLOW_ALL (VFIO_IRQ_ALLOW(VFIO_IRQ_MSIX) | VFIO_IRQ_ALLOW(VFIO_IRQ_MSI) | \
			    VFIO_IRQ_ALLOW(VFIO_IRQ_INTX))
/* Enables the best mode among `allowed` (VFIO_IRQ_ALLOW bits), MSI-X
 * before MSI before INTx, with up to `want` vectors. On success *mode and
 * *nvec say what was set up. */
int vfio_irq_enable(struct vfio_dev *dev, unsigned allowed, unsigned want,
		    enum vfio_irq_mode *mode, unsigned *nvec);
void vfio_irq_disable(struct vfio_dev *dev);
int vfio_irq_fd(const struct vfio_dev *dev, unsigned vec);
/* The device request notification (VFIO_PCI_REQ_IRQ_INDEX): the kernel
 * signals this eventfd when it wants the device back (unbind, hot
 * removal) and waits until the device is released. -ENOTSUP if the
 * kernel offers none. */
int vfio_req_enable(struct vfio_dev *dev);
int vfio_req_fd(const struct vfio_dev *dev);
/* Gives the device back to the kernel at once: interrupts off, BAR
 * mappings replaced by memory reading all ones (at the same addresses),
 * the device fd closed. DMA mappings and eventfds stay until vfio_close;
 * config space access fails from here on. */
void vfio_release(struct vfio_dev *dev);
/* INTx is masked by VFIO when it fires; unmask after servicing. A no-op
 * for MSI and MSI-X. */
int vfio_irq_unmask(struct vfio_dev *dev);

#endif

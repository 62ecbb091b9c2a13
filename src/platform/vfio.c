#include "platform/vfio.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/log.h"

#define SYSFS_PCI "/sys/bus/pci/devices"
#define PAGE_SZ 4096ull
#define MAX_VECTORS 64

/* IOVA space of one container: sorted, coalesced free extents. */
struct iova_ext {
	uint64_t start;
	uint64_t len;
};

/* One live DMA mapping, kept so that the CPU can reach the bytes behind an
 * IOVA (a bounce buffer's copy) without the caller passing addresses. */
struct dma_map {
	uint64_t iova;
	size_t len;
	void *va;
};

struct vfio_dev {
	char bdf[16];
	int container;
	int group;
	int device;
	uint64_t cfg_off;
	/* The IOVA allocator and the mapping table, under dma_lock: data
	 * threads map and look up client memory (nvme-drv --threads). The
	 * VFIO pin and unpin ioctls run outside it. */
	pthread_mutex_t dma_lock;
	struct iova_ext *free;
	size_t nfree, capfree;
	struct dma_map *maps;
	size_t nmaps, capmaps;
	size_t npending;	/* slots held for maps being pinned, unlocked */
	struct {
		void *addr;
		size_t len;
	} bars[VFIO_PCI_ROM_REGION_INDEX];
	enum vfio_irq_mode irq_mode;
	unsigned nvec;
	int irq_fds[MAX_VECTORS];
	int req_fd;		/* device request eventfd, -1 if none */
	bool released;
};

static int irq_set_fds(struct vfio_dev *d, int index, unsigned n, const int *fds);

/* ---- sysfs ---- */

static int read_sysfs_hex(const char *bdf, const char *attr, uint32_t *out)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/%s", bdf, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	*out = (uint32_t)strtoul(buf, NULL, 16);
	return 0;
}

static int link_basename(const char *bdf, const char *attr, char *out, size_t outlen)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), SYSFS_PCI "/%s/%s", bdf, attr);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, base, strlen(base) + 1);
	return 0;
}

int pci_bdf_parse(const char *s, char out[16])
{
	unsigned dom = 0, bus, dev, fn;
	int consumed = 0;

	if (sscanf(s, "%x:%x:%x.%x%n", &dom, &bus, &dev, &fn, &consumed) == 4 &&
	    s[consumed] == '\0') {
		/* full form */
	} else if (dom = 0, consumed = 0,
		   sscanf(s, "%x:%x.%x%n", &bus, &dev, &fn, &consumed) == 3 && s[consumed] == '\0') {
		/* short form: domain 0 */
	} else {
		return -EINVAL;
	}
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(out, 16, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

int pci_fn_read(const char *bdf, struct pci_fn *f)
{
	uint32_t v;
	char grp[32];
	int rc;

	memset(f, 0, sizeof(*f));
	if (strlen(bdf) >= sizeof(f->bdf))
		return -EINVAL;
	memcpy(f->bdf, bdf, strlen(bdf) + 1);
	rc = read_sysfs_hex(bdf, "class", &f->class_code);
	if (rc)
		return rc == -ENOENT ? -ENOENT : rc;
	if (read_sysfs_hex(bdf, "vendor", &v) == 0)
		f->vendor = (uint16_t)v;
	if (read_sysfs_hex(bdf, "device", &v) == 0)
		f->device = (uint16_t)v;
	if (link_basename(bdf, "driver", f->driver, sizeof(f->driver)) != 0)
		f->driver[0] = '\0';
	f->has_iommu_group = link_basename(bdf, "iommu_group", grp, sizeof(grp)) == 0;
	return 0;
}

static int cmp_fn(const void *a, const void *b)
{
	return strcmp(((const struct pci_fn *)a)->bdf, ((const struct pci_fn *)b)->bdf);
}

int pci_scan_nvme(struct pci_fn *out, size_t max, size_t *n)
{
	DIR *d = opendir(SYSFS_PCI);
	struct dirent *e;
	struct pci_fn f;

	*n = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (pci_fn_read(e->d_name, &f) != 0 || f.class_code != PCI_CLASS_NVME)
			continue;
		if (*n < max)
			out[*n] = f;
		(*n)++;
	}
	closedir(d);
	qsort(out, *n < max ? *n : max, sizeof(*out), cmp_fn);
	return 0;
}

/* ---- IOVA allocator ---- */

static int iova_add_free(struct vfio_dev *d, uint64_t start, uint64_t len)
{
	size_t i;

	if (!len)
		return 0;
	for (i = 0; i < d->nfree && d->free[i].start < start; i++)
		;
	/* coalesce with the neighbours where they touch */
	if (i > 0 && d->free[i - 1].start + d->free[i - 1].len == start) {
		d->free[i - 1].len += len;
		if (i < d->nfree && start + len == d->free[i].start) {
			d->free[i - 1].len += d->free[i].len;
			memmove(&d->free[i], &d->free[i + 1], (d->nfree - i - 1) * sizeof(*d->free));
			d->nfree--;
		}
		return 0;
	}
	if (i < d->nfree && start + len == d->free[i].start) {
		d->free[i].start = start;
		d->free[i].len += len;
		return 0;
	}
	if (d->nfree == d->capfree) {
		size_t cap = d->capfree ? d->capfree * 2 : 16;
		struct iova_ext *nf = realloc(d->free, cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		d->free = nf;
		d->capfree = cap;
	}
	memmove(&d->free[i + 1], &d->free[i], (d->nfree - i) * sizeof(*d->free));
	d->free[i].start = start;
	d->free[i].len = len;
	d->nfree++;
	return 0;
}

static int iova_alloc(struct vfio_dev *d, uint64_t len, uint64_t *iova)
{
	for (size_t i = 0; i < d->nfree; i++) {
		if (d->free[i].len < len)
			continue;
		*iova = d->free[i].start;
		d->free[i].start += len;
		d->free[i].len -= len;
		if (!d->free[i].len) {
			memmove(&d->free[i], &d->free[i + 1], (d->nfree - i - 1) * sizeof(*d->free));
			d->nfree--;
		}
		return 0;
	}
	return -ENOSPC;
}

/* The usable IOVA ranges come from the IOMMU (type1 reports them as a
 * capability: the x86 MSI window 0xfee00000 is excluded there). IOVA 0 and
 * the first MiB are kept out so that a zero address is never valid DMA. */
static int iova_init(struct vfio_dev *d)
{
	struct vfio_iommu_type1_info *info;
	uint32_t argsz = sizeof(*info);
	bool have_ranges = false;
	int rc = 0;

	info = calloc(1, argsz);
	if (!info)
		return -ENOMEM;
	info->argsz = argsz;
	if (ioctl(d->container, VFIO_IOMMU_GET_INFO, info) == 0 && info->argsz > argsz) {
		argsz = info->argsz;
		free(info);
		info = calloc(1, argsz);
		if (!info)
			return -ENOMEM;
		info->argsz = argsz;
		if (ioctl(d->container, VFIO_IOMMU_GET_INFO, info) != 0) {
			free(info);
			return -errno;
		}
	}
	if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->cap_offset) {
		uint32_t off = info->cap_offset;
		while (off && off + sizeof(struct vfio_info_cap_header) <= argsz) {
			struct vfio_info_cap_header *h = (void *)((char *)info + off);
			if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE &&
			    off + sizeof(struct vfio_iommu_type1_info_cap_iova_range) <= argsz) {
				struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
				size_t room = (argsz - off - sizeof(*r)) / sizeof(r->iova_ranges[0]);
				for (uint32_t i = 0; i < r->nr_iovas && i < room; i++) {
					uint64_t s = r->iova_ranges[i].start, e = r->iova_ranges[i].end;
					if (e < 0x100000)
						continue;
					if (s < 0x100000)
						s = 0x100000;
					s = (s + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
					if (e - s + 1 < PAGE_SZ)
						continue;
					rc = iova_add_free(d, s, ((e - s + 1) & ~(PAGE_SZ - 1)));
					if (rc)
						break;
					have_ranges = true;
				}
			}
			if (h->next <= off)
				break;
			off = h->next;
		}
	}
	free(info);
	if (rc)
		return rc;
	if (!have_ranges) /* old kernel: stay below the x86 MSI window */
		rc = iova_add_free(d, 0x100000, 0xfee00000ull - 0x100000);
	return rc;
}

/* ---- open / close ---- */

static int explain_unbound(const char *bdf)
{
	struct pci_fn f;
	int rc = pci_fn_read(bdf, &f);

	if (rc == -ENOENT) {
		log_err(bdf, "no such PCI function");
		return -ENODEV;
	}
	if (rc)
		return rc;
	if (!f.has_iommu_group) {
		log_err(bdf, "no IOMMU group: the kernel sees no IOMMU for this device. "
			"Enable VT-d/AMD-Vi (intel_iommu=on); Debian's kernels lack VFIO's "
			"no-IOMMU mode, so an IOMMU is required");
		return -ENODEV;
	}
	if (strcmp(f.driver, "vfio-pci") != 0) {
		log_err(bdf, "bound to %s, not vfio-pci; bind it with: echo vfio-pci > "
			SYSFS_PCI "/%s/driver_override; %secho %s > /sys/bus/pci/drivers_probe",
			f.driver[0] ? f.driver : "no driver", bdf,
			f.driver[0] ? "echo BDF > /sys/bus/pci/devices/BDF/driver/unbind; " : "", bdf);
		return -ENODEV;
	}
	return 0;
}

int vfio_open(const char *bdf, struct vfio_dev **out)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_region_info ri = { .argsz = sizeof(ri) };
	char grp[32], path[64];
	struct vfio_dev *d;
	int rc;

	rc = explain_unbound(bdf);
	if (rc)
		return rc;
	if (access("/dev/vfio/vfio", F_OK) != 0) {
		log_err(bdf, "VFIO is not available (/dev/vfio/vfio missing): "
			"modprobe vfio-pci vfio_iommu_type1");
		return -ENODEV;
	}
	rc = link_basename(bdf, "iommu_group", grp, sizeof(grp));
	if (rc)
		return rc;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->dma_lock, NULL);
	memcpy(d->bdf, bdf, strlen(bdf) + 1);
	d->container = d->group = d->device = d->req_fd = -1;
	for (unsigned i = 0; i < MAX_VECTORS; i++)
		d->irq_fds[i] = -1;

	d->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (d->container < 0) {
		rc = -errno;
		log_err(bdf, "cannot open /dev/vfio/vfio: %s%s", strerror(errno),
			errno == EACCES ? " (run as root)" : "");
		goto fail;
	}
	if (ioctl(d->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    !ioctl(d->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)) {
		rc = -ENOTSUP;
		log_err(bdf, "VFIO type1v2 IOMMU is not available: modprobe vfio_iommu_type1");
		goto fail;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%s", grp);
	d->group = open(path, O_RDWR | O_CLOEXEC);
	if (d->group < 0) {
		rc = -errno;
		if (errno == EACCES || errno == EPERM)
			log_err(bdf, "no permission to open %s: run as root or give this user the group device", path);
		else if (errno == EBUSY)
			log_err(bdf, "%s is busy: another process (another nvme-drv?) holds the device", path);
		else
			log_err(bdf, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (ioctl(d->group, VFIO_GROUP_GET_STATUS, &gs) != 0) {
		rc = -errno;
		log_err(bdf, "VFIO_GROUP_GET_STATUS: %s", strerror(errno));
		goto fail;
	}
	if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		rc = -EPERM;
		log_err(bdf, "IOMMU group %s is not viable: bind every device in "
			"/sys/kernel/iommu_groups/%s/devices to vfio-pci (or unbind them)", grp, grp);
		goto fail;
	}
	if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container) != 0 ||
	    ioctl(d->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0) {
		rc = -errno;
		log_err(bdf, "cannot attach IOMMU group %s to a type1 container: %s", grp, strerror(errno));
		goto fail;
	}
	rc = iova_init(d);
	if (rc) {
		log_err(bdf, "cannot read the IOMMU's IOVA ranges: %s", strerror(-rc));
		goto fail;
	}
	d->device = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (d->device < 0) {
		rc = -errno;
		log_err(bdf, "VFIO_GROUP_GET_DEVICE_FD: %s", strerror(errno));
		goto fail;
	}
	ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (ioctl(d->device, VFIO_DEVICE_GET_REGION_INFO, &ri) != 0) {
		rc = -errno;
		log_err(bdf, "cannot find the config space region: %s", strerror(errno));
		goto fail;
	}
	d->cfg_off = ri.offset;
	*out = d;
	return 0;
fail:
	vfio_close(d);
	return rc;
}

void vfio_close(struct vfio_dev *d)
{
	if (!d)
		return;
	vfio_irq_disable(d);
	if (d->req_fd >= 0) {
		if (!d->released)
			irq_set_fds(d, VFIO_PCI_REQ_IRQ_INDEX, 0, NULL);
		close(d->req_fd);
	}
	for (unsigned i = 0; i < VFIO_PCI_ROM_REGION_INDEX; i++)
		if (d->bars[i].addr)
			munmap(d->bars[i].addr, d->bars[i].len);
	if (d->device >= 0)
		close(d->device);
	if (d->group >= 0)
		close(d->group);
	if (d->container >= 0)
		close(d->container);
	free(d->maps);
	free(d->free);
	pthread_mutex_destroy(&d->dma_lock);
	free(d);
}

const char *vfio_name(const struct vfio_dev *d)
{
	return d->bdf;
}

/* ---- BARs and config space ---- */

/* BAR0 of an NVMe controller may hold the MSI-X table; where VFIO cannot
 * map that part it reports a sparse-mmap capability and we map the area
 * that starts at offset 0, which holds the registers and doorbells. */
int vfio_map_bar(struct vfio_dev *d, unsigned bar, volatile void **addr, size_t *len)
{
	struct vfio_region_info *ri;
	uint32_t argsz = sizeof(*ri);
	uint64_t map_len;
	void *p;
	int rc = 0;

	if (bar >= VFIO_PCI_ROM_REGION_INDEX)
		return -EINVAL;
	if (d->bars[bar].addr) {
		*addr = d->bars[bar].addr;
		*len = d->bars[bar].len;
		return 0;
	}
	ri = calloc(1, argsz);
	if (!ri)
		return -ENOMEM;
	ri->argsz = argsz;
	ri->index = bar;
	if (ioctl(d->device, VFIO_DEVICE_GET_REGION_INFO, ri) != 0)
		goto err_errno;
	if (ri->argsz > argsz) {
		argsz = ri->argsz;
		free(ri);
		ri = calloc(1, argsz);
		if (!ri)
			return -ENOMEM;
		ri->argsz = argsz;
		ri->index = bar;
		if (ioctl(d->device, VFIO_DEVICE_GET_REGION_INFO, ri) != 0)
			goto err_errno;
	}
	if (!ri->size || !(ri->flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		log_err(d->bdf, "BAR%u cannot be memory-mapped (size %llu, flags %#x)", bar,
			(unsigned long long)ri->size, ri->flags);
		rc = -ENOTSUP;
		goto out;
	}
	map_len = ri->size;
	if ((ri->flags & VFIO_REGION_INFO_FLAG_CAPS) && ri->cap_offset) {
		uint32_t off = ri->cap_offset;
		while (off && off + sizeof(struct vfio_info_cap_header) <= argsz) {
			struct vfio_info_cap_header *h = (void *)((char *)ri + off);
			if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
				struct vfio_region_info_cap_sparse_mmap *sp = (void *)h;
				map_len = 0;
				for (uint32_t i = 0; i < sp->nr_areas; i++)
					if (sp->areas[i].offset == 0)
						map_len = sp->areas[i].size;
			}
			if (h->next <= off)
				break;
			off = h->next;
		}
	}
	if (!map_len) {
		log_err(d->bdf, "BAR%u: VFIO allows no mapping at offset 0", bar);
		rc = -ENOTSUP;
		goto out;
	}
	p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, d->device, (off_t)ri->offset);
	if (p == MAP_FAILED)
		goto err_errno;
	d->bars[bar].addr = p;
	d->bars[bar].len = map_len;
	*addr = p;
	*len = map_len;
	goto out;
err_errno:
	rc = -errno;
	log_err(d->bdf, "cannot map BAR%u: %s", bar, strerror(errno));
out:
	free(ri);
	return rc;
}

int vfio_cfg_read(struct vfio_dev *d, uint32_t off, void *buf, size_t len)
{
	ssize_t n = pread(d->device, buf, len, (off_t)(d->cfg_off + off));
	return n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
}

int vfio_cfg_write(struct vfio_dev *d, uint32_t off, const void *buf, size_t len)
{
	ssize_t n = pwrite(d->device, buf, len, (off_t)(d->cfg_off + off));
	return n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
}

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

int vfio_enable_bus_master(struct vfio_dev *d)
{
	uint16_t cmd;
	int rc = vfio_cfg_read(d, PCI_COMMAND, &cmd, sizeof(cmd));

	if (rc)
		return rc;
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	return vfio_cfg_write(d, PCI_COMMAND, &cmd, sizeof(cmd));
}

int vfio_disable_bus_master(struct vfio_dev *d)
{
	uint16_t cmd;
	int rc = vfio_cfg_read(d, PCI_COMMAND, &cmd, sizeof(cmd));

	if (rc)
		return rc;
	cmd &= (uint16_t)~PCI_COMMAND_MASTER;
	return vfio_cfg_write(d, PCI_COMMAND, &cmd, sizeof(cmd));
}

/* ---- DMA ---- */

static void explain_pin_failure(struct vfio_dev *d, size_t len, int err)
{
	struct rlimit rl;

	if (err == ENOMEM && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		log_err(d->bdf, "cannot pin %zu bytes for DMA: RLIMIT_MEMLOCK is %llu bytes; "
			"raise it (ulimit -l unlimited) or run as root",
			len, (unsigned long long)rl.rlim_cur);
	else
		log_err(d->bdf, "cannot map %zu bytes for DMA: %s", len, strerror(err));
}

/* The IOVA range and a slot in the table are taken under dma_lock; the
 * pin itself (VFIO_IOMMU_MAP_DMA, seconds for gigabytes) runs without it,
 * so that one client's memory table does not stall the other threads'
 * maps and look-ups. No one knows the range before this returns. */
int vfio_dma_map(struct vfio_dev *d, void *vaddr, size_t len, int prot, uint64_t *iova)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m) };
	int rc = 0, err;

	if (!len || (len & (PAGE_SZ - 1)) || ((uintptr_t)vaddr & (PAGE_SZ - 1)))
		return -EINVAL;
	pthread_mutex_lock(&d->dma_lock);
	if (d->nmaps + d->npending == d->capmaps) {
		size_t cap = d->capmaps ? d->capmaps * 2 : 16;
		struct dma_map *nm = realloc(d->maps, cap * sizeof(*nm));

		if (nm) {
			d->maps = nm;
			d->capmaps = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (!rc) {
		rc = iova_alloc(d, len, iova);
		if (rc)
			log_err(d->bdf, "IOVA space exhausted mapping %zu bytes", len);
	}
	if (!rc)
		d->npending++;
	pthread_mutex_unlock(&d->dma_lock);
	if (rc)
		return rc;
	m.flags = ((prot & VFIO_DMA_READ) ? VFIO_DMA_MAP_FLAG_READ : 0) |
		  ((prot & VFIO_DMA_WRITE) ? VFIO_DMA_MAP_FLAG_WRITE : 0);
	m.vaddr = (uintptr_t)vaddr;
	m.iova = *iova;
	m.size = len;
	err = ioctl(d->container, VFIO_IOMMU_MAP_DMA, &m) != 0 ? errno : 0;
	if (err)
		explain_pin_failure(d, len, err);
	pthread_mutex_lock(&d->dma_lock);
	d->npending--;
	if (err) {
		rc = -err;
		iova_add_free(d, *iova, len);
	} else {
		d->maps[d->nmaps++] = (struct dma_map){ .iova = *iova, .len = len, .va = vaddr };
	}
	pthread_mutex_unlock(&d->dma_lock);
	return rc;
}

static void maps_forget(struct vfio_dev *d, uint64_t iova, size_t len)
{
	for (size_t i = 0; i < d->nmaps;) {
		if (d->maps[i].iova >= iova && d->maps[i].iova - iova < len)
			d->maps[i] = d->maps[--d->nmaps];
		else
			i++;
	}
}

void *vfio_iova_to_va(const struct vfio_dev *cd, uint64_t iova, size_t len)
{
	struct vfio_dev *d = (struct vfio_dev *)cd;	/* the lock only */
	void *va = NULL;

	pthread_mutex_lock(&d->dma_lock);
	for (size_t i = 0; i < d->nmaps; i++) {
		const struct dma_map *m = &d->maps[i];

		if (iova >= m->iova && iova - m->iova < m->len && len <= m->len - (iova - m->iova)) {
			va = (char *)m->va + (iova - m->iova);
			break;
		}
	}
	pthread_mutex_unlock(&d->dma_lock);
	return va;
}

/* The unpin runs without dma_lock (as the pin): the range stays
 * allocated and in the table until it is done. */
int vfio_dma_unmap(struct vfio_dev *d, uint64_t iova, size_t len)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .iova = iova, .size = len };
	int rc;

	if (ioctl(d->container, VFIO_IOMMU_UNMAP_DMA, &u) != 0) {
		rc = -errno;
		log_err(d->bdf, "cannot unmap IOVA %#llx+%zu: %s", (unsigned long long)iova, len,
			strerror(errno));
		return rc;
	}
	pthread_mutex_lock(&d->dma_lock);
	maps_forget(d, iova, len);
	rc = iova_add_free(d, iova, len);
	pthread_mutex_unlock(&d->dma_lock);
	return rc;
}

int vfio_dma_alloc(struct vfio_dev *d, size_t len, struct dma_buf *b)
{
	int rc;

	len = (len + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
	b->va = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->va == MAP_FAILED) {
		rc = -errno;
		b->va = NULL;
		log_err(d->bdf, "cannot allocate %zu bytes of DMA memory: %s", len, strerror(errno));
		return rc;
	}
	b->len = len;
	rc = vfio_dma_map(d, b->va, len, VFIO_DMA_READ | VFIO_DMA_WRITE, &b->iova);
	if (rc) {
		munmap(b->va, len);
		b->va = NULL;
	}
	return rc;
}

void vfio_dma_free(struct vfio_dev *d, struct dma_buf *b)
{
	if (!b->va)
		return;
	vfio_dma_unmap(d, b->iova, b->len);
	munmap(b->va, b->len);
	b->va = NULL;
}

/* ---- interrupts ---- */

const char *vfio_irq_mode_name(enum vfio_irq_mode m)
{
	switch (m) {
	case VFIO_IRQ_MSIX: return "MSI-X";
	case VFIO_IRQ_MSI: return "MSI";
	case VFIO_IRQ_INTX: return "INTx";
	default: return "none";
	}
}

static int irq_index(enum vfio_irq_mode m)
{
	return m == VFIO_IRQ_MSIX ? VFIO_PCI_MSIX_IRQ_INDEX :
	       m == VFIO_IRQ_MSI ? VFIO_PCI_MSI_IRQ_INDEX : VFIO_PCI_INTX_IRQ_INDEX;
}

static int irq_set_fds(struct vfio_dev *d, int index, unsigned n, const int *fds)
{
	size_t sz = sizeof(struct vfio_irq_set) + n * sizeof(int32_t);
	struct vfio_irq_set *s = calloc(1, sz);
	int rc = 0;

	if (!s)
		return -ENOMEM;
	s->argsz = (uint32_t)sz;
	s->flags = (n ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
		   VFIO_IRQ_SET_ACTION_TRIGGER;
	s->index = (uint32_t)index;
	s->start = 0;
	s->count = n;
	for (unsigned i = 0; i < n; i++)
		((int32_t *)s->data)[i] = fds[i];
	if (ioctl(d->device, VFIO_DEVICE_SET_IRQS, s) != 0)
		rc = -errno;
	free(s);
	return rc;
}

int vfio_irq_enable(struct vfio_dev *d, unsigned allowed, unsigned want,
		    enum vfio_irq_mode *mode, unsigned *nvec)
{
	if (want == 0)
		want = 1;
	if (want > MAX_VECTORS)
		want = MAX_VECTORS;
	for (enum vfio_irq_mode m = VFIO_IRQ_MSIX; m >= VFIO_IRQ_INTX; m--) {
		struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = (uint32_t)irq_index(m) };
		unsigned n;
		int rc;

		if (!(allowed & VFIO_IRQ_ALLOW(m)))
			continue;
		if (ioctl(d->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) != 0 || ii.count == 0) {
			log_debug(d->bdf, "%s not offered by the device", vfio_irq_mode_name(m));
			continue;
		}
		n = m == VFIO_IRQ_INTX ? 1 : (want < ii.count ? want : ii.count);
		/* MSI allocates vectors in powers of two. */
		if (m == VFIO_IRQ_MSI)
			while (n & (n - 1))
				n &= n - 1;
		for (unsigned i = 0; i < n; i++) {
			d->irq_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (d->irq_fds[i] < 0) {
				rc = -errno;
				for (unsigned j = 0; j < i; j++) {
					close(d->irq_fds[j]);
					d->irq_fds[j] = -1;
				}
				return rc;
			}
		}
		rc = irq_set_fds(d, irq_index(m), n, d->irq_fds);
		if (rc) {
			log_warn(d->bdf, "cannot enable %s: %s", vfio_irq_mode_name(m), strerror(-rc));
			for (unsigned i = 0; i < n; i++) {
				close(d->irq_fds[i]);
				d->irq_fds[i] = -1;
			}
			continue;
		}
		d->irq_mode = m;
		d->nvec = n;
		*mode = m;
		*nvec = n;
		return 0;
	}
	log_err(d->bdf, "no usable interrupt mode (MSI-X, MSI or INTx)");
	return -ENOTSUP;
}

void vfio_irq_disable(struct vfio_dev *d)
{
	if (d->irq_mode != VFIO_IRQ_NONE && !d->released)
		irq_set_fds(d, irq_index(d->irq_mode), 0, NULL);
	for (unsigned i = 0; i < d->nvec; i++) {
		close(d->irq_fds[i]);
		d->irq_fds[i] = -1;
	}
	d->irq_mode = VFIO_IRQ_NONE;
	d->nvec = 0;
}

int vfio_req_enable(struct vfio_dev *d)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_REQ_IRQ_INDEX };
	int rc;

	if (d->req_fd >= 0)
		return 0;
	if (ioctl(d->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) != 0 || ii.count < 1)
		return -ENOTSUP;
	d->req_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->req_fd < 0)
		return -errno;
	rc = irq_set_fds(d, VFIO_PCI_REQ_IRQ_INDEX, 1, &d->req_fd);
	if (rc) {
		close(d->req_fd);
		d->req_fd = -1;
	}
	return rc;
}

int vfio_req_fd(const struct vfio_dev *d)
{
	return d->req_fd;
}

void vfio_release(struct vfio_dev *d)
{
	if (d->released)
		return;
	/* Interrupts off, their eventfds kept: an event loop may still be
	 * watching them, and they close with the rest in vfio_close. */
	if (d->irq_mode != VFIO_IRQ_NONE)
		irq_set_fds(d, irq_index(d->irq_mode), 0, NULL);
	if (d->req_fd >= 0)
		irq_set_fds(d, VFIO_PCI_REQ_IRQ_INDEX, 0, NULL);
	/* A BAR mapping holds the device open. Put anonymous memory reading
	 * all ones (what a device gone from the bus answers) at the same
	 * address, so a register access that still comes is harmless. */
	for (unsigned i = 0; i < VFIO_PCI_ROM_REGION_INDEX; i++) {
		void *p;

		if (!d->bars[i].addr)
			continue;
		p = mmap(d->bars[i].addr, d->bars[i].len, PROT_READ | PROT_WRITE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			log_err(d->bdf, "cannot replace BAR%u's mapping: %s; the device stays held", i,
				strerror(errno));
			return;
		}
		memset(p, 0xff, d->bars[i].len);
	}
	if (d->device >= 0)
		close(d->device);
	d->device = -1;
	d->released = true;
}

int vfio_irq_fd(const struct vfio_dev *d, unsigned vec)
{
	return vec < d->nvec ? d->irq_fds[vec] : -1;
}

int vfio_irq_unmask(struct vfio_dev *d)
{
	struct vfio_irq_set s = {
		.argsz = sizeof(s),
		.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
		.index = VFIO_PCI_INTX_IRQ_INDEX,
		.start = 0,
		.count = 1,
	};

	if (d->irq_mode != VFIO_IRQ_INTX)
		return 0;
	return ioctl(d->device, VFIO_DEVICE_SET_IRQS, &s) == 0 ? 0 : -errno;
}

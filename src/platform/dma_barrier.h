/* Ordering between the CPU's accesses to DMA memory (queues, data) and
 * the device's, in the terms Linux uses: dma_wmb() orders stores to DMA
 * memory before later stores to it; dma_rmb() orders a load that says an
 * entry is valid (a phase tag) before the loads of the entry; mmio_wmb()
 * orders stores to DMA memory before a following store to a device
 * register (a doorbell), as Linux's writel() does; dma_mb() orders stores
 * to DMA memory before later loads from it (a shadow doorbell value before
 * the read of the EventIdx the device writes), as Linux's mb() does.
 *
 * Only x86 is defined: its stores are seen in program order, loads are not
 * reordered with older loads, and a store to uncached MMIO is not passed by
 * older stores to write-back memory, so stopping the compiler is enough
 * (Linux's x86 dma_wmb/dma_rmb are barrier(); its writel has no fence).
 * A store followed by a load from another address is the one reordering
 * x86 does (the store waits in the store buffer): dma_mb() is an mfence.
 * Other architectures need real fences here, written and tested there. */
#ifndef NVD_PLATFORM_DMA_BARRIER_H
#define NVD_PLATFORM_DMA_BARRIER_H

#if defined(__x86_64__) || defined(__i386__)
#define dma_wmb() __asm__ __volatile__("" ::: "memory")
#define dma_rmb() __asm__ __volatile__("" ::: "memory")
#define mmio_wmb() __asm__ __volatile__("" ::: "memory")
#define dma_mb() __asm__ __volatile__("mfence" ::: "memory")
#else
#error "nvme-drv defines DMA barriers for x86 only (src/platform/dma_barrier.h)"
#endif

#endif

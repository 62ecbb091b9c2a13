/* libFuzzer entry for the vdpa generic netlink replies: the input is one
 * datagram as recvfrom() gives it to transact(), for a request sent with
 * sequence number SEQ (seeds: tests/fuzz/mkseeds).
 *
 * The datagram is an exact-size heap block (libFuzzer's copy), so ASan
 * reports a read past it. What the callers use must be sane: the error a
 * negative errno or 0, the kernel's message one printable NUL-terminated
 * line. */
#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "transport/vdpa_nl.h"

#define SEQ 0x4e5644u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vdpa_nl_reply r;
	int rc;

	/* transact() refuses a datagram larger than its buffer. */
	if (size > VDPA_NL_BUF)
		return 0;
	memset(&r, 0, sizeof(r));
	rc = vdpa_nl_parse(data, size, SEQ, &r);
	FUZZ_ASSERT(rc == 0 || rc == -EPROTO);
	FUZZ_ASSERT(r.error <= 0 && r.error >= -4095);
	FUZZ_ASSERT(r.acked || r.error == 0);
	FUZZ_ASSERT(strnlen(r.msg, sizeof(r.msg)) < sizeof(r.msg));
	FUZZ_ASSERT(!fuzz_has_control(r.msg));
	for (const char *p = r.msg; *p; p++)
		FUZZ_ASSERT((unsigned char)*p < 0x7f);
	return 0;
}

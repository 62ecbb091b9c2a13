/* vhost-user message validation: every request nvme-drv serves, with its
 * payload size and fd count right and each of them wrong once. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "transport/vhu_msg.h"

static struct vhost_user_msg m;

static int v(uint32_t req, uint32_t size, unsigned nfds)
{
	const char *why;

	m.hdr.request = req;
	m.hdr.flags = VHOST_USER_VERSION;
	m.hdr.size = size;
	return vhu_msg_validate(&m, size, nfds, &why);
}

static void test_header(void)
{
	const char *why;

	memset(&m, 0, sizeof(m));
	CHECK_EQ_INT(v(VHOST_USER_GET_FEATURES, 0, 0), 0);
	m.hdr.flags = 0;	/* version 0 */
	CHECK_EQ_INT(vhu_msg_validate(&m, 0, 0, &why), -EPROTO);
	CHECK(why != NULL);
	m.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	CHECK_EQ_INT(vhu_msg_validate(&m, 0, 0, &why), -EPROTO);
	m.hdr.flags = VHOST_USER_VERSION;
	m.hdr.size = 8;	/* header says 8, 0 arrived */
	CHECK_EQ_INT(vhu_msg_validate(&m, 0, 0, &why), -EPROTO);
	m.hdr.size = 4096;
	CHECK_EQ_INT(vhu_msg_validate(&m, 4096, 0, &why), -EPROTO);
	CHECK_EQ_INT(v(9999, 0, 0), -ENOSYS);
	CHECK_EQ_INT(v(VHOST_USER_SET_LOG_BASE, 16, 1), -ENOSYS);
	CHECK_STREQ(vhu_request_name(VHOST_USER_SET_MEM_TABLE), "SET_MEM_TABLE");
	CHECK_STREQ(vhu_request_name(12345), "unknown request");
}

static void test_sizes(void)
{
	memset(&m, 0, sizeof(m));
	CHECK_EQ_INT(v(VHOST_USER_SET_FEATURES, 8, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_FEATURES, 4, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_SET_FEATURES, 8, 1), -EPROTO);	/* stray fd */
	CHECK_EQ_INT(v(VHOST_USER_GET_FEATURES, 8, 0), 0);	/* a zero u64 is tolerated */
	CHECK_EQ_INT(v(VHOST_USER_GET_FEATURES, 4, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_NUM, 8, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_NUM, 16, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_GET_VRING_BASE, 8, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_ADDR, 40, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_ADDR, 32, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_SET_STATUS, 8, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_GET_MAX_MEM_SLOTS, 0, 0), 0);
	/* The inflight description as QEMU sends it: its C struct, padded to
	 * 24 bytes (t-qemu-frontend.sh once failed on 20). */
	CHECK_EQ_INT(v(VHOST_USER_GET_INFLIGHT_FD, 24, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_GET_INFLIGHT_FD, 20, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_SET_INFLIGHT_FD, 24, 1), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_INFLIGHT_FD, 24, 0), -EPROTO);
	CHECK_STREQ(vhu_request_name(VHOST_USER_GET_INFLIGHT_FD), "GET_INFLIGHT_FD");
}

static void test_vring_fds(void)
{
	memset(&m, 0, sizeof(m));
	m.payload.u64 = 1;	/* queue 1, with an fd */
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_KICK, 8, 1), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_KICK, 8, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_CALL, 8, 2), -EPROTO);
	m.payload.u64 = 1 | VHOST_USER_VRING_NOFD_MASK;
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_CALL, 8, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_VRING_CALL, 8, 1), -EPROTO);
}

static void test_mem_table(void)
{
	memset(&m, 0, sizeof(m));
	m.payload.memory.nregions = 2;
	CHECK_EQ_INT(v(VHOST_USER_SET_MEM_TABLE, 8 + 2 * 32, 2), 0);
	CHECK_EQ_INT(v(VHOST_USER_SET_MEM_TABLE, 8 + 2 * 32, 1), -EPROTO);	/* fd missing */
	CHECK_EQ_INT(v(VHOST_USER_SET_MEM_TABLE, 8 + 3 * 32, 2), -EPROTO);	/* size vs count */
	CHECK_EQ_INT(v(VHOST_USER_SET_MEM_TABLE, 4, 0), -EPROTO);
	m.payload.memory.nregions = 9;
	CHECK_EQ_INT(v(VHOST_USER_SET_MEM_TABLE, 8 + 8 * 32, 8), -EPROTO);
	m.payload.memory.nregions = 0xffffffffu;	/* overflow bait */
	CHECK_EQ_INT(v(VHOST_USER_SET_MEM_TABLE, 8, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_ADD_MEM_REG, 40, 1), 0);
	CHECK_EQ_INT(v(VHOST_USER_ADD_MEM_REG, 40, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_REM_MEM_REG, 40, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_REM_MEM_REG, 40, 1), 0);
	CHECK_EQ_INT(v(VHOST_USER_REM_MEM_REG, 40, 2), -EPROTO);
}

static void test_config(void)
{
	memset(&m, 0, sizeof(m));
	m.payload.config.size = 60;
	CHECK_EQ_INT(v(VHOST_USER_GET_CONFIG, 12 + 60, 0), 0);
	CHECK_EQ_INT(v(VHOST_USER_GET_CONFIG, 12 + 59, 0), -EPROTO);
	CHECK_EQ_INT(v(VHOST_USER_GET_CONFIG, 8, 0), -EPROTO);
	m.payload.config.size = 300;
	CHECK_EQ_INT(v(VHOST_USER_SET_CONFIG, 12 + 256, 0), -EPROTO);
	m.payload.config.size = 0;
	CHECK_EQ_INT(v(VHOST_USER_SET_CONFIG, 12, 0), 0);
}

int main(void)
{
	test_header();
	test_sizes();
	test_vring_fds();
	test_mem_table();
	test_config();
	return check_report("test_vhu_msg");
}

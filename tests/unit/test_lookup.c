/* Device name lookup over a registry of fake disks: every name form, and
 * the copied-partition-table attack: a UUID, label or MBR id on two
 * partitions is refused, naming the SN:nNSID:N names that stay unique. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "blk/disk.h"

#include "check.h"

#define U1 "11111111-0000-4000-8000-000000000001"
#define U2 "11111111-0000-4000-8000-000000000002"
#define U9 "99999999-0000-4000-8000-000000000009"

static struct nvme_ns_info infos[3] = {
	{ .nsid = 1, .name = "SN1:n1", .nlba = 1 << 20, .lba_size = 512, .usable = true },
	{ .nsid = 2, .name = "SN1:n2", .nlba = 1 << 20, .lba_size = 512, .usable = true },
	{ .nsid = 1, .name = "SN2:n1", .nlba = 1 << 18, .lba_size = 4096, .usable = true },
};

/* SN1:n1 the victim's GPT, SN1:n2 a clean MBR, SN2:n1 empty for now. */
static struct part_entry victim[2] = {
	{ .number = 1, .uuid = U1, .label = "boot", .first_lba = 2048, .nlba = 2048 },
	{ .number = 2, .uuid = U2, .label = "root", .first_lba = 4096, .nlba = 8192 },
};
static struct part_entry mbr[1] = {
	{ .number = 1, .uuid = "CAFE0001-01", .first_lba = 2048, .nlba = 100 },
};
static struct part_entry copy[3];

static struct blk_disk disks[3];
static struct blk_registry reg = { disks, 3 };
static char why[256];

static void setup(unsigned ncopy, const struct part_entry *src, enum part_scheme scheme)
{
	disks[0] = (struct blk_disk){ .info = &infos[0], .serial = "SN1",
				      .parts = { PART_SCHEME_GPT, "", 0, 2, victim } };
	disks[1] = (struct blk_disk){ .info = &infos[1], .serial = "SN1",
				      .parts = { PART_SCHEME_MBR, "CAFE0001", 0, 1, mbr } };
	memcpy(copy, src, ncopy * sizeof(*src));
	disks[2] = (struct blk_disk){ .info = &infos[2], .serial = "SN2",
				      .parts = { scheme, "", 0, ncopy, copy } };
}

/* name must resolve to `want`; why stays untouched. */
static void found(const char *name, const char *want, int line)
{
	struct blk_target t;
	int rc;

	memset(&t, 0, sizeof(t));
	snprintf(why, sizeof(why), "untouched");
	rc = blk_lookup(&reg, name, &t, why, sizeof(why));
	check_count++;
	if (rc != 0 || strcmp(t.name, want) != 0 || strcmp(why, "untouched") != 0) {
		check_failed++;
		printf("test_lookup.c:%d: %s: rc %d, target \"%s\", wanted %s\n", line, name, rc,
		       t.name, want);
	}
}
#define FOUND(name, want) found(name, want, __LINE__)

/* name must be refused with err; for -ENOTUNIQ why must hold each of the
 * (NULL-ended) names. *out stays untouched. */
static void refused(const char *name, int err, const char *const *names, int line)
{
	struct blk_target t;
	int rc;

	memset(&t, 0x5a, sizeof(t));
	why[0] = '\0';
	rc = blk_lookup(&reg, name, &t, why, sizeof(why));
	check_count++;
	if (rc != err || ((unsigned char *)&t)[0] != 0x5a) {
		check_failed++;
		printf("test_lookup.c:%d: %s: rc %d, wanted %d\n", line, name, rc, err);
		return;
	}
	for (; names && *names; names++) {
		check_count++;
		if (!strstr(why, *names) || strchr(why, '\n')) {
			check_failed++;
			printf("test_lookup.c:%d: %s: why \"%s\" does not name %s\n", line, name,
			       why, *names);
		}
	}
}
#define REFUSED(name, err, ...)							\
	do {									\
		const char *const n_[] = { __VA_ARGS__ };			\
		refused(name, err, n_, __LINE__);				\
	} while (0)

static void test_unique(void)
{
	const struct part_entry other = { .number = 1, .uuid = U9, .label = "data",
					  .first_lba = 256, .nlba = 256 };

	setup(1, &other, PART_SCHEME_GPT);
	FOUND("SN1:n1", "SN1:n1");
	FOUND("SN1:n1:2", "SN1:n1:2");
	FOUND("SN2:n1:1", "SN2:n1:1");
	FOUND(U1, "SN1:n1:1");
	FOUND("partuuid:" U2, "SN1:n1:2");
	FOUND("partlabel:root", "SN1:n1:2");
	FOUND("partlabel:data", "SN2:n1:1");
	FOUND("cafe0001-01", "SN1:n2:1");
	REFUSED("SN1:n3", -ENODEV, NULL);
	REFUSED("SN1:n1:3", -ENODEV, NULL);
	REFUSED("partlabel:none", -ENODEV, NULL);
	REFUSED("SN1:n0", -EINVAL, NULL);
}

/* A client of the whole disk SN2:n1 wrote the victim's table onto it. */
static void test_copied_gpt(void)
{
	struct blk_target t;

	setup(2, victim, PART_SCHEME_GPT);
	REFUSED(U1, -ENOTUNIQ, "SN1:n1:1", "SN2:n1:1", "SN:nNSID:N", NULL);
	REFUSED("partuuid:" U2, -ENOTUNIQ, "SN1:n1:2", "SN2:n1:2", NULL);
	REFUSED("partlabel:boot", -ENOTUNIQ, "SN1:n1:1", "SN2:n1:1", NULL);
	/* The names that stay unique still work, on both disks. */
	FOUND("SN1:n1:1", "SN1:n1:1");
	FOUND("SN2:n1:1", "SN2:n1:1");
	/* The refusal does not depend on which disk comes first. */
	{
		struct blk_disk first = disks[0];

		disks[0] = disks[2];
		disks[2] = first;
	}
	REFUSED(U1, -ENOTUNIQ, "SN1:n1:1", "SN2:n1:1", NULL);
	/* whylen 0: still refused, nothing written. */
	CHECK_EQ_INT(blk_lookup(&reg, U1, &t, NULL, 0), -ENOTUNIQ);
}

/* Only one field copied: the label, or the UUID. */
static void test_copied_one_field(void)
{
	struct part_entry e = victim[1];

	memcpy(e.uuid, U9, sizeof(U9));
	e.number = 1;
	setup(1, &e, PART_SCHEME_GPT);
	REFUSED("partlabel:root", -ENOTUNIQ, "SN1:n1:2", "SN2:n1:1", NULL);
	FOUND("partuuid:" U2, "SN1:n1:2");
	FOUND(U9, "SN2:n1:1");

	e = victim[0];
	memcpy(e.label, "mine", sizeof("mine"));
	setup(1, &e, PART_SCHEME_GPT);
	REFUSED(U1, -ENOTUNIQ, "SN1:n1:1", "SN2:n1:1", NULL);
	FOUND("partlabel:boot", "SN1:n1:1");
	FOUND("partlabel:mine", "SN2:n1:1");
}

/* Two MBR disks with one disk signature: every MBR id is on both. */
static void test_copied_mbr(void)
{
	setup(1, mbr, PART_SCHEME_MBR);
	REFUSED("CAFE0001-01", -ENOTUNIQ, "SN1:n2:1", "SN2:n1:1", NULL);
	REFUSED("partuuid:cafe0001-01", -ENOTUNIQ, "SN1:n2:1", "SN2:n1:1", NULL);
}

/* Two partitions of one disk with one UUID (a table written by hand). */
static void test_duplicate_in_one_disk(void)
{
	struct part_entry two[2] = { victim[0], victim[0] };

	two[1].number = 2;
	two[1].first_lba = 8192;
	setup(2, two, PART_SCHEME_GPT);
	REFUSED(U1, -ENOTUNIQ, "SN1:n1:1", "SN2:n1:1", "SN2:n1:2", NULL);
}

/* Many copies: the message stays one line within its buffer. */
static void test_many(void)
{
	struct part_entry many[3] = { victim[0], victim[0], victim[0] };

	for (unsigned i = 0; i < 3; i++)
		many[i].number = i + 1;
	setup(3, many, PART_SCHEME_GPT);
	disks[1].parts = (struct part_table){ PART_SCHEME_GPT, "", 0, 3, many };
	REFUSED(U1, -ENOTUNIQ, "SN1:n1:1", "...", NULL);
	CHECK(strlen(why) < sizeof(why) - 1);
}

int main(void)
{
	test_unique();
	test_copied_gpt();
	test_copied_one_field();
	test_copied_mbr();
	test_duplicate_in_one_disk();
	test_many();
	return check_report("lookup");
}

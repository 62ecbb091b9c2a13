/* Log line styles: journald's <N> priorities only when stderr is the
 * stream $JOURNAL_STREAM names, time stamps otherwise; log_status()
 * heard at the default level, silenced by -q. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#include "check.h"

static char path[] = "/tmp/nvd-test-log.XXXXXX";
static char got[4096];

/* What the calls since the last read wrote to stderr. */
static const char *read_err(void)
{
	return check_read_err(path, got, sizeof(got));
}

int main(void)
{
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char js[64];
	struct stat st;

	if (fd < 0 || saved < 0 || fstat(fd, &st) != 0) {
		printf("cannot make %s\n", path);
		return 1;
	}
	dup2(fd, STDERR_FILENO);
	log_set_prog("/usr/sbin/nvme-drv");

	unsetenv("JOURNAL_STREAM");
	CHECK_EQ_INT(log_style_for_service(), LOG_STYLE_TIMESTAMP);
	/* Another stream's (stderr redirected away from the journal). */
	setenv("JOURNAL_STREAM", "8:12345", 1);
	CHECK_EQ_INT(log_style_for_service(), LOG_STYLE_TIMESTAMP);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	CHECK_EQ_INT(log_style_for_service(), LOG_STYLE_JOURNAL);

	log_set_level(LOG_WARN);
	log_set_style(LOG_STYLE_JOURNAL);
	log_err("SN1:n1", "gone %d", 1);
	log_warn(NULL, "odd");
	log_info(NULL, "not at the default level");
	log_status("serving %u disks to %u clients", 2u, 1u);
	CHECK_STREQ(read_err(), "<3>SN1:n1: gone 1\n<4>odd\n<6>serving 2 disks to 1 clients\n");

	log_set_style(LOG_STYLE_PLAIN);
	log_err(NULL, "plain");
	CHECK_STREQ(read_err(), "nvme-drv: error: plain\n");

	log_set_style(LOG_STYLE_TIMESTAMP);
	log_status("stopped");
	read_err();
	/* 2026-11-30T11:40:00.123 nvme-drv: info: stopped */
	CHECK(strlen(got) == 24 + strlen("nvme-drv: info: stopped\n") && got[4] == '-' &&
	      got[10] == 'T' && got[19] == '.' && got[23] == ' ' &&
	      strcmp(got + 24, "nvme-drv: info: stopped\n") == 0);

	log_set_level(LOG_QUIET);
	log_status("not with -q");
	CHECK_STREQ(read_err(), "");

	dup2(saved, STDERR_FILENO);
	unlink(path);
	return check_report("log");
}

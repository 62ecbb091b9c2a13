#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_level = LOG_WARN;
static enum log_style g_style = LOG_STYLE_PLAIN;
static const char *g_prog = "nvme-drv";

void log_set_level(int level)
{
	if (level < LOG_QUIET)
		level = LOG_QUIET;
	if (level > LOG_TRACE)
		level = LOG_TRACE;
	g_level = level;
}

int log_get_level(void)
{
	return g_level;
}

void log_set_prog(const char *prog)
{
	const char *slash = strrchr(prog, '/');
	g_prog = slash ? slash + 1 : prog;
}

void log_set_style(enum log_style style)
{
	g_style = style;
}

enum log_style log_style_for_service(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (js && sscanf(js, "%llu:%llu%c", &dev, &ino, &end) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		return LOG_STYLE_JOURNAL;
	return LOG_STYLE_TIMESTAMP;
}

/* syslog(3) priorities, by level. */
static const int level_prio[] = {
	[LOG_ERR] = 3, [LOG_WARN] = 4, [LOG_INFO] = 6, [LOG_DEBUG] = 7, [LOG_TRACE] = 7,
};

static const char *const level_names[] = {
	[LOG_ERR] = "error", [LOG_WARN] = "warning", [LOG_INFO] = "info",
	[LOG_DEBUG] = "debug", [LOG_TRACE] = "trace",
};

static void emit(int level, const char *subject, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n = 0;
	int k;

	/* Build the whole line first so concurrent writers do not interleave. */
	if (g_style == LOG_STYLE_JOURNAL) {
		k = snprintf(line, sizeof(line), "<%d>", level_prio[level]);
	} else {
		k = 0;
		if (g_style == LOG_STYLE_TIMESTAMP) {
			struct timeval tv;
			struct tm tm;

			gettimeofday(&tv, NULL);
			localtime_r(&tv.tv_sec, &tm);
			k = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
			k += snprintf(line + k, sizeof(line) - (size_t)k, ".%03ld ",
				      (long)(tv.tv_usec / 1000));
		}
		k += snprintf(line + k, sizeof(line) - (size_t)k, "%s: %s: ", g_prog,
			      level_names[level]);
	}
	if (k > 0 && (size_t)k < sizeof(line))
		n = (size_t)k;
	if (subject) {
		k = snprintf(line + n, sizeof(line) - n, "%s: ", subject);
		if (k > 0 && (size_t)k < sizeof(line) - n)
			n += (size_t)k;
	}
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

void log_msg(int level, const char *subject, const char *fmt, ...)
{
	va_list ap;

	if (level > g_level || level < LOG_ERR || level > LOG_TRACE)
		return;
	va_start(ap, fmt);
	emit(level, subject, fmt, ap);
	va_end(ap);
}

void log_status(const char *fmt, ...)
{
	va_list ap;

	if (g_level == LOG_QUIET)
		return;
	va_start(ap, fmt);
	emit(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int g_level = LOG_WARN;
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

static const char *const level_names[] = {
	[LOG_ERR] = "error", [LOG_WARN] = "warning", [LOG_INFO] = "info",
	[LOG_DEBUG] = "debug", [LOG_TRACE] = "trace",
};

void log_msg(int level, const char *subject, const char *fmt, ...)
{
	char line[1024];
	int n;
	va_list ap;

	if (level > g_level || level < LOG_ERR || level > LOG_TRACE)
		return;
	/* Build the whole line first so concurrent writers do not interleave. */
	if (subject)
		n = snprintf(line, sizeof(line), "%s: %s: %s: ", g_prog,
			     level_names[level], subject);
	else
		n = snprintf(line, sizeof(line), "%s: %s: ", g_prog, level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

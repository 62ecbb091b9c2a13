/* Logging: one line per event, tagged with the object it concerns.
 *
 * Levels follow the seed's -v/-q: errors and warnings by default, -v info,
 * -vv debug, -vvv trace; -q silences everything. */
#ifndef NVD_UTIL_LOG_H
#define NVD_UTIL_LOG_H

enum log_level {
	LOG_QUIET = -1,
	LOG_ERR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
	LOG_TRACE = 4,
};

/* Set once by main from -v/-q before anything logs. */
void log_set_level(int level);
int log_get_level(void);
/* Program name printed at the start of each line. */
void log_set_prog(const char *prog);

/* How lines start. PLAIN: "PROG: LEVEL: " (a command's messages).
 * TIMESTAMP: the local time to the millisecond first (a server's log
 * read later). JOURNAL: "<N>" with N the syslog priority (3 error,
 * 4 warning, 6 info, 7 debug and trace), which journald turns into the
 * entry's priority; it stamps the time and the program itself. */
enum log_style { LOG_STYLE_PLAIN, LOG_STYLE_TIMESTAMP, LOG_STYLE_JOURNAL };
void log_set_style(enum log_style style);
/* JOURNAL when stderr is the stream $JOURNAL_STREAM names (systemd sets
 * it to "DEV:INODE" of the stream it connected; a child whose stderr was
 * redirected elsewhere inherits the variable but not the stream), else
 * TIMESTAMP. */
enum log_style log_style_for_service(void);

/* `subject` names the controller, namespace or client ("0000:00:04.0",
 * "SN1:n1"); NULL for process-wide messages. */
void log_msg(int level, const char *subject, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An info line at the default level too (only -q silences it): the few
 * a service manager's log should always have, ready and stopped. */
void log_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_enabled(lvl) (log_get_level() >= (lvl))
#define log_err(subj, ...) log_msg(LOG_ERR, subj, __VA_ARGS__)
#define log_warn(subj, ...) log_msg(LOG_WARN, subj, __VA_ARGS__)
#define log_info(subj, ...) log_msg(LOG_INFO, subj, __VA_ARGS__)
#define log_debug(subj, ...) \
	do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, subj, __VA_ARGS__); } while (0)
#define log_trace(subj, ...) \
	do { if (log_enabled(LOG_TRACE)) log_msg(LOG_TRACE, subj, __VA_ARGS__); } while (0)

#endif

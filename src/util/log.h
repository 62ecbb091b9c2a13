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

/* `subject` names the controller, namespace or client ("0000:00:04.0",
 * "SN1:n1"); NULL for process-wide messages. */
void log_msg(int level, const char *subject, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_enabled(lvl) (log_get_level() >= (lvl))
#define log_err(subj, ...) log_msg(LOG_ERR, subj, __VA_ARGS__)
#define log_warn(subj, ...) log_msg(LOG_WARN, subj, __VA_ARGS__)
#define log_info(subj, ...) log_msg(LOG_INFO, subj, __VA_ARGS__)
#define log_debug(subj, ...) \
	do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, subj, __VA_ARGS__); } while (0)
#define log_trace(subj, ...) \
	do { if (log_enabled(LOG_TRACE)) log_msg(LOG_TRACE, subj, __VA_ARGS__); } while (0)

#endif

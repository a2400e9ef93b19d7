/* Logging: syslog levels, stderr in the foreground (-d), debug behind -v. */
#ifndef VB_LOG_H
#define VB_LOG_H

#include <syslog.h>

void log_init(int to_stderr, int verbose, const char *ident);
int log_level_enabled(int prio);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As log_msg, with ": strerror(errno)" appended. */
void log_errno(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_warn(...)   log_errno(LOG_WARNING, __VA_ARGS__)
#define log_warnx(...)  log_msg(LOG_WARNING, __VA_ARGS__)
#define log_err(...)    log_errno(LOG_ERR, __VA_ARGS__)
#define log_errx(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_level_enabled(LOG_DEBUG))                                                  \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

/* Start-up failures and broken invariants of our own only. */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif

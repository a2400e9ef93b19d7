#include "bridge/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_stderr = 1;
static int log_verbose;

void log_init(int to_stderr, int verbose, const char *ident)
{
	log_stderr = to_stderr;
	log_verbose = verbose;
	if (!to_stderr) {
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
}

int log_level_enabled(int prio)
{
	if (prio < LOG_INFO) {
		return 1;
	}
	if (prio == LOG_INFO) {
		return 1;
	}
	return log_verbose > 0;
}

static const char *const prio_names[] = {"emerg",   "alert",  "crit", "err",
                                         "warning", "notice", "info", "debug"};

static void log_vmsg(int prio, const char *fmt, va_list ap, const char *suffix)
{
	char buf[1024];
	int n;

	if (!log_level_enabled(prio)) {
		return;
	}
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (suffix && n >= 0 && (size_t)n < sizeof(buf)) {
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", suffix);
	}
	if (log_stderr) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		fprintf(stderr, "[%ld.%03ld] %s: %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000,
		        prio_names[prio & 7], buf);
	} else {
		syslog(prio, "%s", buf);
	}
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(prio, fmt, ap, NULL);
	va_end(ap);
}

void log_errno(int prio, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(prio, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

#include "bridge/sigbus.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guard {
	uintptr_t start;
	size_t len; /* 0: free slot; written last on add, first on delete */
	volatile sig_atomic_t *hit;
};

static struct guard guards[SIGBUS_MAX_RANGES];

static void sigbus_handler(int sig, siginfo_t *si, void *uctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	long page = sysconf(_SC_PAGESIZE);

	for (size_t i = 0; i < SIGBUS_MAX_RANGES; i++) {
		const struct guard *g = &guards[i];

		if (g->len && a >= g->start && a - g->start < g->len) {
			/* mmap is async-signal-safe in practice: a plain system call. */
			void *p = (void *)(a & ~(uintptr_t)(page - 1));

			if (mmap(p, (size_t)page, PROT_READ | PROT_WRITE,
			         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
				*g->hit = 1;
				return;
			}
			break;
		}
	}
	signal(SIGBUS, SIG_DFL);
	raise(SIGBUS);
}

int sigbus_guard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0) {
		return -errno;
	}
	return 0;
}

int sigbus_guard_add(void *base, size_t len, volatile sig_atomic_t *hit)
{
	for (size_t i = 0; i < SIGBUS_MAX_RANGES; i++) {
		if (!guards[i].len) {
			guards[i].start = (uintptr_t)base;
			guards[i].hit = hit;
			__atomic_store_n(&guards[i].len, len, __ATOMIC_RELEASE);
			return 0;
		}
	}
	return -ENOSPC;
}

void sigbus_guard_move(void *base, volatile sig_atomic_t *hit)
{
	for (size_t i = 0; i < SIGBUS_MAX_RANGES; i++) {
		if (guards[i].len && guards[i].start == (uintptr_t)base) {
			__atomic_store_n(&guards[i].hit, hit, __ATOMIC_RELEASE);
		}
	}
}

void sigbus_guard_del(void *base)
{
	for (size_t i = 0; i < SIGBUS_MAX_RANGES; i++) {
		if (guards[i].len && guards[i].start == (uintptr_t)base) {
			__atomic_store_n(&guards[i].len, 0, __ATOMIC_RELEASE);
		}
	}
}

/*
 * SIGBUS guard for memory shared with a peer. A VMM may truncate the file
 * behind guest memory after we mapped it; touching the lost pages then
 * raises SIGBUS. For addresses inside a guarded range the handler maps an
 * anonymous page over the faulting one (so the access completes, reading
 * zeros) and sets the range's flag; the owner sees the flag and closes the
 * session. Faults anywhere else keep the default action.
 */
#ifndef VB_SIGBUS_H
#define VB_SIGBUS_H

#include <signal.h>
#include <stddef.h>

#define SIGBUS_MAX_RANGES 256

/* Installs (or re-installs) the handler. 0 or -errno. */
int sigbus_guard_install(void);
/* Guards [base, base+len); *hit is set to 1 on a fault there. 0 or -ENOSPC. */
int sigbus_guard_add(void *base, size_t len, volatile sig_atomic_t *hit);
/* Stops guarding the range that starts at base. */
void sigbus_guard_del(void *base);
/* The range that starts at base reports into hit from now on (its flag moved). */
void sigbus_guard_move(void *base, volatile sig_atomic_t *hit);

#endif

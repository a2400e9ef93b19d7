/*
 * Guest memory table: the regions a vhost-user frontend shares with us
 * (SET_MEM_TABLE / ADD_MEM_REG / REM_MEM_REG), and translation of guest
 * physical addresses (descriptors) and frontend virtual addresses (ring
 * addresses from SET_VRING_ADDR) to our mapping. Translation never returns
 * more than what is contiguous in one region: callers split buffers.
 */
#ifndef VB_GMEM_H
#define VB_GMEM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define GMEM_MAX_REGIONS 32

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
	uint8_t *host;  /* first byte of the region in our address space */
	void *map_base; /* what mmap returned, NULL for borrowed memory */
	size_t map_len;
};

struct gmem {
	/* Set by the SIGBUS guard when a mapped file shrank under us (sigbus.h). */
	volatile sig_atomic_t fault;
	unsigned nregions;
	struct gmem_region r[GMEM_MAX_REGIONS];
};

void gmem_init(struct gmem *m);
/* True once any fd-backed region faulted (its file was truncated): the session must end. */
static inline bool gmem_faulted(const struct gmem *m)
{
	return m->fault != 0;
}

/* Unmaps every region. */
void gmem_clear(struct gmem *m);

/*
 * Moves the table src to dst (whose regions must have been cleared) and
 * leaves src empty. The SIGBUS guard of each mapping reports into dst->fault
 * from then on: a table that maps fds must not be copied any other way.
 */
void gmem_move(struct gmem *dst, struct gmem *src);

/*
 * Checks a region against the table without changing it: size != 0, no
 * overflow of gpa+size, uaddr+size, mmap_offset+size, no overlap in gpa or
 * uaddr with an existing region, room in the table. 0 or -EINVAL/-ENOSPC/-EEXIST
 * with *why set.
 */
int gmem_check(const struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr,
               uint64_t mmap_offset, const char **why);

/*
 * Maps [mmap_offset, mmap_offset+size) of fd and adds it. fd must be a
 * regular file (memfd) whose size covers mmap_offset+size. Does not close fd
 * (the caller does, mapped or not). 0 or -errno with *why set.
 */
int gmem_add_fd(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t mmap_offset,
                int fd, const char **why);

/* Adds memory we already own (tests, and our own rings in the driver role). */
int gmem_add_host(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr, void *host,
                  const char **why);

/* Removes the region matching gpa, size and uaddr exactly; -ENOENT otherwise. */
int gmem_remove(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr);

/*
 * Guest physical [gpa, gpa+len) -> *host; returns the number of bytes
 * contiguous from gpa within one region (<= len), 0 if gpa is unmapped.
 */
uint64_t gmem_gpa(const struct gmem *m, uint64_t gpa, uint64_t len, void **host);
/* The same for a frontend virtual address. */
uint64_t gmem_uva(const struct gmem *m, uint64_t uaddr, uint64_t len, void **host);

/*
 * Appends host segments covering guest [gpa, gpa+len) to iov[*n..max),
 * splitting at region boundaries. 0, -EFAULT (a hole) or -E2BIG (more than max).
 */
int gmem_iov(const struct gmem *m, uint64_t gpa, uint64_t len, struct iovec *iov, int *n, int max);

/* Copy between a flat buffer and an iovec, starting at byte off of the iovec. */
size_t iov_from_buf(const struct iovec *iov, int n, size_t off, const void *buf, size_t len);
size_t iov_to_buf(const struct iovec *iov, int n, size_t off, void *buf, size_t len);
size_t iov_length(const struct iovec *iov, int n);

#endif

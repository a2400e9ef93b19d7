/*
 * Guest memory table. Every region comes from a peer (the VMM's memory table,
 * or a backend we drive), so every field is checked before it is stored, and
 * translation never hands out more than what lies inside one region: a buffer
 * that crosses a region boundary is split by gmem_iov(), one over a hole fails.
 */
#include "bridge/gmem.h"
#include "bridge/sigbus.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge/util.h"

void gmem_init(struct gmem *m)
{
	memset(m, 0, sizeof(*m));
}

static void region_unmap(struct gmem_region *r)
{
	if (r->map_base != NULL) {
		sigbus_guard_del(r->map_base);
		munmap(r->map_base, r->map_len);
	}
	r->map_base = NULL;
	r->host = NULL;
}

void gmem_clear(struct gmem *m)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		region_unmap(&m->r[i]);
	}
	gmem_init(m);
}

/* A plain copy would leave each guard pointing at src->fault (a dead stack frame, say). */
void gmem_move(struct gmem *dst, struct gmem *src)
{
	*dst = *src;
	for (unsigned i = 0; i < dst->nregions; i++) {
		if (dst->r[i].map_base != NULL) {
			sigbus_guard_move(dst->r[i].map_base, &dst->fault);
		}
	}
	gmem_init(src);
}

/* a + len stays representable: the end of every range is computed without wrapping. */
static bool range_ok(uint64_t a, uint64_t len)
{
	return a <= UINT64_MAX - len;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int gmem_check(const struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr,
               uint64_t mmap_offset, const char **why)
{
	if (size == 0) {
		*why = "region size is 0";
		return -EINVAL;
	}
	if (size > SIZE_MAX || !range_ok(gpa, size) || !range_ok(uaddr, size) ||
	    !range_ok(mmap_offset, size)) {
		*why = "region end overflows (gpa, uaddr or mmap_offset + size)";
		return -EINVAL;
	}
	if (m->nregions >= GMEM_MAX_REGIONS) {
		*why = "too many memory regions";
		return -ENOSPC;
	}
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct gmem_region *r = &m->r[i];

		if (ranges_overlap(gpa, size, r->gpa, r->size)) {
			*why = "region overlaps another one in guest physical space";
			return -EEXIST;
		}
		if (ranges_overlap(uaddr, size, r->uaddr, r->size)) {
			*why = "region overlaps another one in frontend virtual space";
			return -EEXIST;
		}
	}
	return 0;
}

static void region_append(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr,
                          uint64_t mmap_offset, uint8_t *host, void *map_base, size_t map_len)
{
	struct gmem_region *r = &m->r[m->nregions++];

	r->gpa = gpa;
	r->size = size;
	r->uaddr = uaddr;
	r->mmap_offset = mmap_offset;
	r->host = host;
	r->map_base = map_base;
	r->map_len = map_len;
}

/*
 * A region past the end of its file would map fine and SIGBUS on first
 * touch, so the file size is checked before mapping (vhost-user.md,
 * "Fds": memfd region must cover offset+size).
 */
static int fd_covers(int fd, uint64_t end, const char **why)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		*why = "cannot stat region fd";
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "region fd is not a regular file";
		return -EINVAL;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size < end) {
		*why = "region fd is smaller than mmap_offset + size";
		return -EINVAL;
	}
	return 0;
}

int gmem_add_fd(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr, uint64_t mmap_offset,
                int fd, const char **why)
{
	uint64_t page, delta;
	void *base;
	int rc;

	rc = gmem_check(m, gpa, size, uaddr, mmap_offset, why);
	if (rc < 0) {
		return rc;
	}
	if (fd < 0) {
		*why = "no fd for region";
		return -EBADF;
	}
	rc = fd_covers(fd, mmap_offset + size, why);
	if (rc < 0) {
		return rc;
	}
	/* mmap wants a page-aligned offset; keep the slack in front of the region. */
	page = (uint64_t)sysconf(_SC_PAGESIZE);
	delta = mmap_offset & (page - 1);
	if (size > SIZE_MAX - delta) {
		*why = "region too large to map";
		return -EINVAL;
	}
	base = mmap(NULL, (size_t)(size + delta), PROT_READ | PROT_WRITE,
	            MAP_SHARED | MAP_NORESERVE, fd, (off_t)(mmap_offset - delta));
	if (base == MAP_FAILED) {
		*why = "cannot mmap region";
		return -errno;
	}
	/* A peer that truncates the file later costs its session, not the daemon (sigbus.h). */
	if (sigbus_guard_add(base, (size_t)(size + delta), &m->fault) < 0) {
		munmap(base, (size_t)(size + delta));
		*why = "too many guarded mappings";
		return -ENOSPC;
	}
	/* Guest RAM has no place in our core dumps; failure only costs dump size. */
	(void)madvise(base, (size_t)(size + delta), MADV_DONTDUMP);
	region_append(m, gpa, size, uaddr, mmap_offset, (uint8_t *)base + delta, base,
	              (size_t)(size + delta));
	return 0;
}

int gmem_add_host(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr, void *host,
                  const char **why)
{
	int rc;

	if (host == NULL) {
		*why = "no host memory for region";
		return -EINVAL;
	}
	rc = gmem_check(m, gpa, size, uaddr, 0, why);
	if (rc < 0) {
		return rc;
	}
	region_append(m, gpa, size, uaddr, 0, host, NULL, 0);
	return 0;
}

int gmem_remove(struct gmem *m, uint64_t gpa, uint64_t size, uint64_t uaddr)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		struct gmem_region *r = &m->r[i];

		if (r->gpa != gpa || r->size != size || r->uaddr != uaddr) {
			continue;
		}
		region_unmap(r);
		memmove(r, r + 1, (m->nregions - i - 1) * sizeof(*r));
		m->nregions--;
		memset(&m->r[m->nregions], 0, sizeof(m->r[0]));
		return 0;
	}
	return -ENOENT;
}

/* key is a gpa or a uaddr depending on by_uaddr; region ends never wrap (gmem_check). */
static uint64_t translate(const struct gmem *m, bool by_uaddr, uint64_t key, uint64_t len,
                          void **host)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct gmem_region *r = &m->r[i];
		uint64_t start = by_uaddr ? r->uaddr : r->gpa;
		uint64_t off;

		if (key < start || key - start >= r->size) {
			continue;
		}
		off = key - start;
		*host = r->host + off;
		return VB_MIN(len, r->size - off);
	}
	*host = NULL;
	return 0;
}

uint64_t gmem_gpa(const struct gmem *m, uint64_t gpa, uint64_t len, void **host)
{
	return translate(m, false, gpa, len, host);
}

uint64_t gmem_uva(const struct gmem *m, uint64_t uaddr, uint64_t len, void **host)
{
	return translate(m, true, uaddr, len, host);
}

int gmem_iov(const struct gmem *m, uint64_t gpa, uint64_t len, struct iovec *iov, int *n, int max)
{
	while (len > 0) {
		void *host;
		uint64_t got;

		if (*n >= max) {
			return -E2BIG;
		}
		got = gmem_gpa(m, gpa, len, &host);
		if (got == 0) {
			return -EFAULT;
		}
		iov[*n].iov_base = host;
		iov[*n].iov_len = (size_t)got;
		(*n)++;
		/* gpa + got <= the region's end, which does not wrap. */
		gpa += got;
		len -= got;
	}
	return 0;
}

/* Finds the segment holding byte off of the iovec; *skip is the offset inside it. */
static int iov_seek(const struct iovec *iov, int n, size_t off, size_t *skip)
{
	int i = 0;

	while (i < n && off >= iov[i].iov_len) {
		off -= iov[i].iov_len;
		i++;
	}
	*skip = off;
	return i;
}

size_t iov_from_buf(const struct iovec *iov, int n, size_t off, const void *buf, size_t len)
{
	const uint8_t *src = buf;
	size_t done = 0, skip;

	for (int i = iov_seek(iov, n, off, &skip); i < n && done < len; i++) {
		size_t c = VB_MIN(iov[i].iov_len - skip, len - done);

		memcpy((uint8_t *)iov[i].iov_base + skip, src + done, c);
		done += c;
		skip = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, int n, size_t off, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t done = 0, skip;

	for (int i = iov_seek(iov, n, off, &skip); i < n && done < len; i++) {
		size_t c = VB_MIN(iov[i].iov_len - skip, len - done);

		memcpy(dst + done, (const uint8_t *)iov[i].iov_base + skip, c);
		done += c;
		skip = 0;
	}
	return done;
}

size_t iov_length(const struct iovec *iov, int n)
{
	size_t total = 0;

	for (int i = 0; i < n; i++) {
		total += iov[i].iov_len;
	}
	return total;
}

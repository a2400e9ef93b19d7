/* Unit tests for bridge/gmem.c: region checks, memfd mapping, translation, iovecs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bridge/gmem.h"
#include "bridge/sigbus.h"
#include "bridge/util.h"

/* Two regions every check-table row is compared with. */
#define R1_GPA 0x10000ull
#define R1_UVA 0x70000000ull
#define R2_GPA 0x40000ull
#define R2_UVA 0x80000000ull

static uint8_t r1_mem[0x10000], r2_mem[0x1000];

static void table_two(struct gmem *m)
{
	const char *why = NULL;

	gmem_init(m);
	assert_int_equal(gmem_add_host(m, R1_GPA, sizeof(r1_mem), R1_UVA, r1_mem, &why), 0);
	assert_int_equal(gmem_add_host(m, R2_GPA, sizeof(r2_mem), R2_UVA, r2_mem, &why), 0);
}

static void test_check_table(void **state)
{
	static const struct {
		const char *name;
		uint64_t gpa, size, uaddr, off;
		int expect;
	} rows[] = {
	    {"adjacent below", 0x0, 0x10000, 0x10000000, 0, 0},
	    {"adjacent above", 0x20000, 0x1000, 0x90000000, 0, 0},
	    {"between, uva apart", 0x30000, 0x10000, 0x71000000, 0x1000, 0},
	    {"ends at UINT64_MAX", UINT64_MAX - 0x1000, 0x1000, 0x1000, 0, 0},
	    {"size 0", 0x100000, 0, 0x1000, 0, -EINVAL},
	    {"gpa+size wraps", UINT64_MAX - 0xfff, 0x1000, 0x1000, 0, -EINVAL},
	    {"size UINT64_MAX", 1, UINT64_MAX, 0x1000, 0, -EINVAL},
	    {"uaddr+size wraps", 0x100000, 0x1000, UINT64_MAX - 0x10, 0, -EINVAL},
	    {"offset+size wraps", 0x100000, 0x1000, 0x1000, UINT64_MAX - 0xfff, -EINVAL},
	    {"gpa inside R1", R1_GPA + 0x1000, 0x1000, 0x1000, 0, -EEXIST},
	    {"gpa covers R1", 0x0, 0x100000, 0x1000, 0, -EEXIST},
	    {"gpa ends on R1's first byte", R1_GPA - 0x1000, 0x1001, 0x1000, 0, -EEXIST},
	    {"gpa starts on R1's last byte", R1_GPA + 0x10000 - 1, 0x10, 0x1000, 0, -EEXIST},
	    {"uaddr inside R2", 0x100000, 0x1000, R2_UVA + 0xfff, 0, -EEXIST},
	    {"uaddr covers R1", 0x100000, 0x20000000, R1_UVA - 0x1000, 0, -EEXIST},
	};
	struct gmem m;

	(void)state;
	table_two(&m);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		const char *why = NULL;
		int rc =
		    gmem_check(&m, rows[i].gpa, rows[i].size, rows[i].uaddr, rows[i].off, &why);

		if (rc != rows[i].expect) {
			fail_msg("%s: got %d want %d", rows[i].name, rc, rows[i].expect);
		}
		if (rc != 0 && why == NULL) {
			fail_msg("%s: no reason given", rows[i].name);
		}
	}
	/* gmem_check changes nothing. */
	assert_int_equal(m.nregions, 2);
	gmem_clear(&m);
}

static void test_too_many_regions(void **state)
{
	static uint8_t page[GMEM_MAX_REGIONS + 1][64];
	struct gmem m;
	const char *why;

	(void)state;
	gmem_init(&m);
	for (unsigned i = 0; i < GMEM_MAX_REGIONS; i++) {
		assert_int_equal(
		    gmem_add_host(&m, i * 0x1000ull, 64, 0x100000 + i * 0x1000ull, page[i], &why),
		    0);
	}
	assert_int_equal(gmem_add_host(&m, 0x800000, 64, 0x900000, page[GMEM_MAX_REGIONS], &why),
	                 -ENOSPC);
	assert_int_equal(m.nregions, GMEM_MAX_REGIONS);
	/* Removing one makes room again. */
	assert_int_equal(gmem_remove(&m, 0x3000, 64, 0x103000), 0);
	assert_int_equal(gmem_add_host(&m, 0x800000, 64, 0x900000, page[GMEM_MAX_REGIONS], &why),
	                 0);
	assert_int_equal(gmem_add_host(&m, 0x900000, 64, 0xa00000, NULL, &why), -EINVAL);
	gmem_clear(&m);
	assert_int_equal(m.nregions, 0);
}

static int memfd_of(size_t size)
{
	int fd = memfd_create("test_gmem", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void test_add_fd_size(void **state)
{
	static const struct {
		const char *name;
		uint64_t size, off;
		int expect;
	} rows[] = {
	    {"whole file", 0x4000, 0, 0},
	    {"tail page", 0x1000, 0x3000, 0},
	    {"unaligned offset", 0x2000, 0x1800, 0},
	    {"one byte past the end", 0x1001, 0x3000, -EINVAL},
	    {"offset past the end", 0x1000, 0x4000, -EINVAL},
	    {"bigger than file", 0x8000, 0, -EINVAL},
	};
	int fd = memfd_of(0x4000);

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct gmem m;
		const char *why = NULL;
		int rc;

		gmem_init(&m);
		rc = gmem_add_fd(&m, 0x100000, rows[i].size, 0x7f0000, rows[i].off, fd, &why);
		if (rc != rows[i].expect) {
			fail_msg("%s: got %d want %d (%s)", rows[i].name, rc, rows[i].expect,
			         why ? why : "");
		}
		assert_int_equal(m.nregions, rc == 0 ? 1 : 0);
		gmem_clear(&m);
	}
	close(fd);
}

static void test_add_fd_bad_fd(void **state)
{
	struct gmem m;
	const char *why;
	int p[2];

	(void)state;
	gmem_init(&m);
	assert_int_equal(gmem_add_fd(&m, 0, 0x1000, 0, 0, -1, &why), -EBADF);
	assert_int_equal(pipe(p), 0);
	why = NULL;
	assert_int_equal(gmem_add_fd(&m, 0, 0x1000, 0, 0, p[0], &why), -EINVAL);
	assert_non_null(why);
	assert_non_null(strstr(why, "regular file"));
	close(p[0]);
	close(p[1]);
	assert_int_equal(m.nregions, 0);
}

/* Writes through the translated mapping must land in the file at mmap_offset. */
static void test_add_fd_translate(void **state)
{
	int fd = memfd_of(0x4000);
	struct gmem m;
	const char *why;
	void *host;
	uint8_t back[4];

	(void)state;
	gmem_init(&m);
	assert_int_equal(gmem_add_fd(&m, 0x100000, 0x2000, 0x7f0000, 0x1800, fd, &why), 0);
	assert_int_equal(gmem_gpa(&m, 0x100010, 4, &host), 4);
	memcpy(host, "abcd", 4);
	assert_int_equal(pread(fd, back, 4, 0x1810), 4);
	assert_memory_equal(back, "abcd", 4);
	/* The same byte by frontend virtual address. */
	assert_int_equal(gmem_uva(&m, 0x7f0010, 4, &host), 4);
	assert_memory_equal(host, "abcd", 4);
	/* Contiguous length stops at the region end. */
	assert_int_equal(gmem_gpa(&m, 0x101ff0, 0x100, &host), 0x10);
	assert_int_equal(gmem_gpa(&m, 0x102000, 1, &host), 0);
	assert_null(host);
	assert_int_equal(gmem_gpa(&m, 0xfffff, 1, &host), 0);
	close(fd);
	/* Still mapped after the caller closed its fd. */
	assert_int_equal(gmem_gpa(&m, 0x100010, 4, &host), 4);
	assert_memory_equal(host, "abcd", 4);
	gmem_clear(&m);
}

static void test_remove(void **state)
{
	int fd = memfd_of(0x2000);
	struct gmem m;
	const char *why;
	void *host;

	(void)state;
	table_two(&m);
	assert_int_equal(gmem_add_fd(&m, 0x80000, 0x2000, 0x60000000, 0, fd, &why), 0);
	close(fd);
	assert_int_equal(m.nregions, 3);
	/* Only an exact match removes. */
	assert_int_equal(gmem_remove(&m, R1_GPA, 0x1000, R1_UVA), -ENOENT);
	assert_int_equal(gmem_remove(&m, R1_GPA, sizeof(r1_mem), R1_UVA + 1), -ENOENT);
	assert_int_equal(gmem_remove(&m, R1_GPA + 1, sizeof(r1_mem), R1_UVA), -ENOENT);
	assert_int_equal(gmem_remove(&m, R1_GPA, sizeof(r1_mem), R1_UVA), 0);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(gmem_gpa(&m, R1_GPA, 1, &host), 0);
	assert_int_equal(gmem_uva(&m, R1_UVA, 1, &host), 0);
	/* The others are intact. */
	assert_int_equal(gmem_gpa(&m, R2_GPA + 8, 8, &host), 8);
	assert_ptr_equal(host, r2_mem + 8);
	assert_int_equal(gmem_gpa(&m, 0x81000, 0x2000, &host), 0x1000);
	assert_int_equal(gmem_remove(&m, 0x80000, 0x2000, 0x60000000), 0);
	assert_int_equal(gmem_gpa(&m, 0x81000, 1, &host), 0);
	assert_int_equal(gmem_remove(&m, 0x80000, 0x2000, 0x60000000), -ENOENT);
	/* Its space can be reused. */
	assert_int_equal(gmem_add_host(&m, R1_GPA, 0x100, R1_UVA, r1_mem, &why), 0);
	gmem_clear(&m);
}

/* A (0x0..0x1000) and B (0x1000..0x2000) adjacent in gpa, separate in host memory; hole; C. */
static uint8_t ra[0x1000], rb[0x1000], rc_[0x1000];

static void table_split(struct gmem *m)
{
	const char *why;

	gmem_init(m);
	assert_int_equal(gmem_add_host(m, 0x0, sizeof(ra), 0x10000, ra, &why), 0);
	assert_int_equal(gmem_add_host(m, 0x1000, sizeof(rb), 0x20000, rb, &why), 0);
	assert_int_equal(gmem_add_host(m, 0x3000, sizeof(rc_), 0x30000, rc_, &why), 0);
}

static void test_iov(void **state)
{
	static const struct {
		const char *name;
		uint64_t gpa, len;
		int max, expect, nseg;
		size_t first_len;
	} rows[] = {
	    {"inside A", 0x10, 0x20, 4, 0, 1, 0x20},
	    {"A into B", 0xff0, 0x20, 4, 0, 2, 0x10},
	    {"A, B and into the hole", 0xff0, 0x1020, 4, -EFAULT, -1, 0},
	    {"in the hole", 0x2800, 1, 4, -EFAULT, -1, 0},
	    {"B end into hole", 0x1fff, 2, 4, -EFAULT, -1, 0},
	    {"A into B, one slot", 0xff0, 0x20, 1, -E2BIG, -1, 0},
	    {"zero length", 0x10, 0, 4, 0, 0, 0},
	    {"end of C", 0x3ff0, 0x10, 4, 0, 1, 0x10},
	};
	struct gmem m;

	(void)state;
	table_split(&m);
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct iovec iov[4];
		int n = 0, rc;

		rc = gmem_iov(&m, rows[i].gpa, rows[i].len, iov, &n, rows[i].max);
		if (rc != rows[i].expect) {
			fail_msg("%s: got %d want %d", rows[i].name, rc, rows[i].expect);
		}
		if (rc == 0 && n != rows[i].nseg) {
			fail_msg("%s: %d segments, want %d", rows[i].name, n, rows[i].nseg);
		}
		if (rc == 0 && n > 0 && iov[0].iov_len != rows[i].first_len) {
			fail_msg("%s: first segment %zu", rows[i].name, iov[0].iov_len);
		}
		if (rc == 0 && iov_length(iov, n) != rows[i].len) {
			fail_msg("%s: total %zu", rows[i].name, iov_length(iov, n));
		}
	}
	gmem_clear(&m);
}

static void test_iov_split_content(void **state)
{
	struct gmem m;
	struct iovec iov[4];
	int n = 1; /* appends after what is there */
	uint8_t in[0x20], out[0x20];

	(void)state;
	table_split(&m);
	for (size_t i = 0; i < sizeof(in); i++) {
		in[i] = (uint8_t)(i + 1);
	}
	assert_int_equal(gmem_iov(&m, 0xff0, sizeof(in), iov, &n, 4), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[1].iov_base, ra + 0xff0);
	assert_ptr_equal(iov[2].iov_base, rb);
	assert_int_equal(iov_from_buf(iov + 1, 2, 0, in, sizeof(in)), sizeof(in));
	assert_memory_equal(ra + 0xff0, in, 0x10);
	assert_memory_equal(rb, in + 0x10, 0x10);
	/* Offsets that cross the segment boundary. */
	memset(out, 0, sizeof(out));
	assert_int_equal(iov_to_buf(iov + 1, 2, 0xc, out, 8), 8);
	assert_memory_equal(out, in + 0xc, 8);
	/* Short copies at the end, nothing past it. */
	assert_int_equal(iov_to_buf(iov + 1, 2, 0x1c, out, 16), 4);
	assert_int_equal(iov_to_buf(iov + 1, 2, 0x20, out, 16), 0);
	assert_int_equal(iov_from_buf(iov + 1, 2, 0x40, in, 1), 0);
	gmem_clear(&m);
}

/*
 * Adversarial case 16: the peer shrinks the memfd after we mapped it. The
 * access that would raise SIGBUS reads zeros instead, the table says it
 * faulted, and a fresh table is clean again.
 */
static void test_sigbus_guard(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	struct gmem m;
	const char *why = NULL;
	volatile uint8_t *p;
	void *host;
	int fd = memfd_create("vb-test-sigbus", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * page), 0);
	assert_int_equal(sigbus_guard_install(), 0);
	gmem_init(&m);
	assert_int_equal(gmem_add_fd(&m, 0, (uint64_t)(4 * page), 0x7000000, 0, fd, &why), 0);
	assert_int_equal(gmem_gpa(&m, 0, (uint64_t)(4 * page), &host), (uint64_t)(4 * page));
	p = host;
	p[3 * page] = 0x5a;
	assert_int_equal(p[3 * page], 0x5a);
	assert_false(gmem_faulted(&m));

	assert_int_equal(ftruncate(fd, page), 0); /* the peer takes pages 1..3 away */
	assert_int_equal(p[3 * page], 0);         /* would be SIGBUS */
	p[2 * page + 7] = 1;                      /* a write too */
	assert_true(gmem_faulted(&m));
	assert_int_equal(p[0], 0); /* page 0 is still the file's */
	gmem_clear(&m);
	assert_false(gmem_faulted(&m));
	close(fd);
}

/*
 * A table moved to another struct (vu_dev's SET_MEM_TABLE builds the new one
 * on the stack) reports faults into its new home, not into the old one.
 */
static void test_sigbus_after_move(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	struct gmem *dst = calloc(1, sizeof(*dst));
	struct gmem src;
	const char *why = NULL;
	volatile uint8_t *p;
	void *host;
	int fd = memfd_create("vb-test-move", MFD_CLOEXEC);

	assert_non_null(dst);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * page), 0);
	assert_int_equal(sigbus_guard_install(), 0);
	gmem_init(&src);
	assert_int_equal(gmem_add_fd(&src, 0, (uint64_t)(2 * page), 0x7000000, 0, fd, &why), 0);
	gmem_move(dst, &src);
	assert_int_equal(src.nregions, 0);
	assert_int_equal(dst->nregions, 1);
	assert_int_equal(gmem_gpa(dst, page, 1, &host), 1);
	p = host;
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(*p, 0); /* would be SIGBUS */
	assert_true(gmem_faulted(dst));
	assert_false(gmem_faulted(&src));
	gmem_clear(dst);
	free(dst);
	close(fd);
}

/* A SIGBUS outside guarded memory keeps its default action (the process dies). */
static void test_sigbus_unguarded(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	int status = 0;
	pid_t pid;

	assert_int_equal(sigbus_guard_install(), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = memfd_create("vb-test-unguarded", 0);
		volatile uint8_t *p;

		sigbus_guard_install(); /* over the test framework's own handler */
		if (fd < 0 || ftruncate(fd, 2 * page) < 0) {
			_exit(2);
		}
		p = mmap(NULL, (size_t)(2 * page), PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED || ftruncate(fd, 0) < 0) {
			_exit(3);
		}
		(void)p[page];
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_table),
	    cmocka_unit_test(test_sigbus_guard),
	    cmocka_unit_test(test_sigbus_unguarded),
	    cmocka_unit_test(test_sigbus_after_move),
	    cmocka_unit_test(test_too_many_regions),
	    cmocka_unit_test(test_add_fd_size),
	    cmocka_unit_test(test_add_fd_bad_fd),
	    cmocka_unit_test(test_add_fd_translate),
	    cmocka_unit_test(test_remove),
	    cmocka_unit_test(test_iov),
	    cmocka_unit_test(test_iov_split_content),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "bridge/util.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

uint64_t vb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int vb_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	/* Decimal digits only: strtoull would also take spaces, signs, 0x and octal. */
	if (!s || *s < '0' || *s > '9') {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s) {
		return -EINVAL;
	}
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' && shift) {
		end++;
	}
	if (*end == 'B' || *end == 'b') {
		end++;
	}
	if (*end) {
		return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		return -ERANGE;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

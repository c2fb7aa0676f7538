#include "check.h"

#include <stddef.h>

#include "spf.h"

const struct check *const all_checks[] = {
	&spf_check,
	NULL,
};

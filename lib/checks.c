#include "check.h"

#include <stddef.h>

#include "dkim.h"
#include "dmarc.h"
#include "spf.h"

/* DMARC reads the SPF and DKIM results: it comes after both. */
const struct check *const all_checks[] = {
	&spf_check,
	&dkim_check,
	&dmarc_check,
	NULL,
};

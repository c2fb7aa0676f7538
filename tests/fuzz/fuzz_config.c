/*
 * libFuzzer target: any byte string as a config file. It must load or
 * fail with a message; never crash, never leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../lib/config.h"
#include "../../lib/mxg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/mxguard-fuzz-config-XXXXXX";
	char err[MXG_ERRLEN];
	struct config *cfg;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	if (config_load(path, &cfg, err) == 0)
		config_free(cfg);
	unlink(path);
	return 0;
}

/*
 * test/unit/helper_tmpdir.c - the scratch folder of a unit test: made with
 * mkdtemp, removed with rm -rf once the tests have run.
 */
#include <stdio.h>
#include <stdlib.h>

#include "helper_tmpdir.h"

int test_tmpdir_make(char *buf, size_t size, const char *tag)
{
	snprintf(buf, size, "/tmp/imgbk-%s-%s", tag, "XXXXXX");
	return mkdtemp(buf) ? 0 : -1;
}

int test_tmpdir_remove(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

const char *test_tmpdir_path(const char *dir, const char *name)
{
	static char buf[4][512];
	static int k;
	char *p = buf[k++ & 3];
	snprintf(p, sizeof buf[0], "%s/%s", dir, name);
	return p;
}

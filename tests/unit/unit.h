/*
 * Shared by every Check program: one Suite per lib module, run in fork
 * mode so that one crash fails one test, exit status for automake.
 */
#ifndef FIN_UNIT_H
#define FIN_UNIT_H

#include <check.h>
#include <stdlib.h>

#define FIN_CHECK_MAIN(make_suite)					\
int									\
main(void)								\
{									\
	SRunner	*sr = srunner_create(make_suite());			\
	int	 failed;						\
									\
	srunner_run_all(sr, CK_NORMAL);					\
	failed = srunner_ntests_failed(sr);				\
	srunner_free(sr);						\
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;		\
}

/* Skips (passes with a note) when the harness did not provide a service. */
#define FIN_REQUIRE_ENV(var)						\
	do {								\
		if (getenv(var) == NULL || getenv(var)[0] == '\0')	\
			ck_abort_msg(var " not set: run under "		\
			    "tests/harness/with-services");		\
	} while (0)

#endif /* FIN_UNIT_H */

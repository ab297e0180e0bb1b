/*
 * finance-migrate: applies the pending database migrations.  Safe to run
 * twice and from two hosts at once (lib/migrate.c takes an advisory lock).
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

static void
usage(FILE *f)
{
	fprintf(f, "usage: finance-migrate [--dir DIR] [--dry-run]\n"
	    "Applies db/migrations/NNNN_*.sql to DATABASE_URL "
	    "(default dir: %s)\n", FIN_MIGRATIONS_DIR);
}

int
main(int argc, char *argv[])
{
	struct fin_config *cfg;
	struct fin_ctx	*ctx;
	const char	*dir = FIN_MIGRATIONS_DIR;
	char		 why[256];
	bool		 dry_run = false;
	enum fin_err	 e;
	int		 i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--dry-run") == 0)
			dry_run = true;
		else if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	cfg = fin_config_load(false, why, sizeof(why));
	if (cfg == NULL) {
		fprintf(stderr, "finance-migrate: %s\n", why);
		return 1;
	}
	fin_log_init(cfg->log_level, "migrate");
	ctx = fin_ctx_new(cfg);
	if (ctx == NULL) {
		fprintf(stderr, "finance-migrate: out of memory\n");
		return 1;
	}
	e = fin_migrate(ctx, dir, dry_run, stdout);
	fin_ctx_free(ctx);
	fin_config_free(cfg);
	if (e != FIN_OK) {
		fprintf(stderr, "finance-migrate: failed (%s)\n", fin_err_code(e));
		return 1;
	}
	return 0;
}

/*
 * Forward-only migrations: db/migrations/NNNN_<what>.sql, applied in order,
 * each in its own SQL transaction together with its row in
 * schema_migrations.  A session-level advisory lock serialises concurrent
 * runs (two hosts deploying at once): the second waits, then finds nothing
 * left to do.  A file whose first line is "-- migrate: no-transaction" runs
 * outside a transaction, for CREATE INDEX CONCURRENTLY on live tables.
 */
#include "setup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "internal.h"

#define MIGRATION_FILE_MAX	(4 * 1024 * 1024)
#define MIGRATIONS_MAX		1000
#define NO_TXN_MARK		"-- migrate: no-transaction"
/* Any constant works; this one spells "finmigr" so it is recognisable. */
#define MIGRATE_LOCK_KEY	"7235441290451493746"
/*
 * How long one statement may wait for a table lock.  A DDL statement that
 * waits holds up every query behind it on that table, so it gives up soon
 * (SQLSTATE 55P03) and the whole migration is tried again a little later.
 */
#define MIGRATE_LOCK_TIMEOUT	"SET lock_timeout = '2s'"
#define MIGRATE_LOCK_TRIES	5

static const struct fin_stmt stmt_lock = {
	"migrate_lock", "SELECT pg_advisory_lock($1::bigint)", 1 };
static const struct fin_stmt stmt_unlock = {
	"migrate_unlock", "SELECT pg_advisory_unlock($1::bigint)", 1 };
static const struct fin_stmt stmt_applied = {
	"migrate_applied",
	"SELECT checksum FROM schema_migrations WHERE version = $1", 1 };
static const struct fin_stmt stmt_record = {
	"migrate_record",
	"INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", 2 };

static const char create_table_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version text PRIMARY KEY,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now())";

static bool
valid_name(const char *n)
{
	size_t	 i, len = strlen(n);

	if (len < 10 || strcmp(n + len - 4, ".sql") != 0)
		return false;
	for (i = 0; i < 4; i++)
		if (n[i] < '0' || n[i] > '9')
			return false;
	if (n[4] != '_')
		return false;
	for (i = 5; i < len - 4; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') ||
		    n[i] == '_'))
			return false;
	return true;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *
read_file(const char *dir, const char *name, size_t *len)
{
	char	 path[4096];
	FILE	*f;
	char	*buf;
	size_t	 n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	buf = malloc(MIGRATION_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, MIGRATION_FILE_MAX + 1, f);
	fclose(f);
	if (n > MIGRATION_FILE_MAX) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void
checksum(const char *s, size_t len, char out[65])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;

	EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(out + i * 2, 3, "%02x", md[i]);
	out[64] = '\0';
}

/* Applies one file; *applied says whether it was new. */
static enum fin_err
apply_one(struct fin_ctx *ctx, const char *dir, const char *file, FILE *out,
    bool dry_run, bool *applied)
{
	char		 version[256], sum[65];
	const char	*params[2];
	PGresult	*res;
	char		*sql;
	size_t		 len;
	enum fin_err	 e;
	bool		 no_txn;
	int		 try;

	*applied = false;
	snprintf(version, sizeof(version), "%.*s", (int)(strlen(file) - 4), file);
	sql = read_file(dir, file, &len);
	if (sql == NULL) {
		fprintf(out, "could not read %s/%s\n", dir, file);
		return FIN_E_INTERNAL_ERROR;
	}
	checksum(sql, len, sum);
	params[0] = version;
	e = Fin_db_exec(ctx, &stmt_applied, params, &res);
	if (e != FIN_OK) {
		free(sql);
		return e;
	}
	if (PQntuples(res) == 1) {
		/*
		 * The database does not hold what the file says: stop, or the
		 * deploy goes on against a schema nobody has.
		 */
		e = strcmp(PQgetvalue(res, 0, 0), sum) == 0 ? FIN_OK :
		    FIN_E_INTERNAL_ERROR;
		if (e != FIN_OK)
			fprintf(out, "failed %s: it changed after it was "
			    "applied (migrations are forward-only: restore "
			    "the file and add a new one)\n", version);
		PQclear(res);
		free(sql);
		return e;
	}
	PQclear(res);
	if (dry_run) {
		fprintf(out, "pending %s\n", version);
		free(sql);
		return FIN_OK;
	}
	no_txn = strncmp(sql, NO_TXN_MARK, sizeof(NO_TXN_MARK) - 1) == 0;
	/*
	 * CREATE INDEX CONCURRENTLY blocks nobody while it waits for older
	 * transactions, and given up it would leave an invalid index.
	 */
	if ((e = Fin_db_exec_script(ctx, no_txn ? "SET lock_timeout = 0" :
	    MIGRATE_LOCK_TIMEOUT)) != FIN_OK) {
		free(sql);
		return e;
	}
	for (try = 1; ; try++) {
		if (!no_txn && (e = fin_db_begin(ctx)) != FIN_OK) {
			free(sql);
			return e;
		}
		e = Fin_db_exec_script(ctx, sql);
		if (e == FIN_OK) {
			params[1] = sum;
			e = Fin_db_exec(ctx, &stmt_record, params, &res);
			PQclear(res);
		}
		if (e == FIN_OK || no_txn || try == MIGRATE_LOCK_TRIES ||
		    strcmp(ctx->last_sqlstate, "55P03") != 0)
			break;
		fin_db_rollback(ctx);
		fprintf(out, "%s: a table is busy (lock_timeout), trying "
		    "again\n", version);
		sleep(1);
	}
	free(sql);
	if (e != FIN_OK) {
		if (!no_txn)
			fin_db_rollback(ctx);
		fprintf(out, "failed %s: nothing of it was applied%s\n", version,
		    no_txn ? " (unless it was no-transaction: check)" : "");
		return e;
	}
	if (!no_txn && (e = fin_db_commit(ctx)) != FIN_OK)
		return e;
	fprintf(out, "applied %s\n", version);
	*applied = true;
	return FIN_OK;
}

enum fin_err
fin_migrate(struct fin_ctx *ctx, const char *dir, bool dry_run, FILE *out)
{
	DIR		*d;
	struct dirent	*de;
	char		*names[MIGRATIONS_MAX];
	const char	*lock[1] = { MIGRATE_LOCK_KEY };
	size_t		 n = 0, i, len, napplied = 0;
	PGresult	*res;
	enum fin_err	 e;
	bool		 applied;

	d = opendir(dir);
	if (d == NULL) {
		fprintf(out, "could not open %s: %s\n", dir, strerror(errno));
		return FIN_E_INTERNAL_ERROR;
	}
	e = FIN_OK;
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (!valid_name(de->d_name)) {
			/* Misnamed, it would be skipped without a word. */
			if (len >= 4 &&
			    strcmp(de->d_name + len - 4, ".sql") == 0) {
				fprintf(out, "%s is not named "
				    "NNNN_<a-z0-9_>.sql: rename it\n",
				    de->d_name);
				e = FIN_E_INTERNAL_ERROR;
			}
			continue;
		}
		if (n == MIGRATIONS_MAX ||
		    (names[n] = strdup(de->d_name)) == NULL) {
			fprintf(out, "could not list %s: more than %d "
			    "migrations, or out of memory\n", dir,
			    MIGRATIONS_MAX);
			e = FIN_E_INTERNAL_ERROR;
			break;
		}
		n++;
	}
	closedir(d);
	if (e != FIN_OK)
		goto out;
	qsort(names, n, sizeof(names[0]), cmp_names);

	/*
	 * DB_STATEMENT_TIMEOUT is for requests: a migration may run longer
	 * (CREATE INDEX CONCURRENTLY), and a second run waits for the first
	 * however long it takes, so neither side gives up waiting.  CREATE
	 * TABLE IF NOT EXISTS's notice is noise on every run.
	 */
	ctx->db_answer_ms = 0;
	e = Fin_db_exec_script(ctx, "SET statement_timeout = 0; "
	    "SET lock_timeout = 0; SET client_min_messages = warning");
	if (e != FIN_OK) {
		fprintf(out, "could not reach PostgreSQL (DATABASE_URL)\n");
		goto out;
	}
	if ((e = Fin_db_exec(ctx, &stmt_lock, lock, &res)) != FIN_OK) {
		fprintf(out, "could not take the migration lock\n");
		goto out;
	}
	PQclear(res);
	if ((e = Fin_db_exec_script(ctx, create_table_sql)) != FIN_OK)
		goto unlock;
	for (i = 0; i < n; i++) {
		e = apply_one(ctx, dir, names[i], out, dry_run, &applied);
		if (e != FIN_OK)
			break;
		napplied += applied;
	}
	if (e == FIN_OK && !dry_run)
		fprintf(out, "%zu applied, %zu already there\n", napplied, n - napplied);
unlock:
	if (Fin_db_exec(ctx, &stmt_unlock, lock, &res) == FIN_OK)
		PQclear(res);
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	return e;
}

/*
 * Configuration from the environment and an optional env file.  Every
 * setting is one row of the table below: its variable, type, default,
 * bounds and meaning.  The README's configuration table is printed from it
 * (finance-fcgi --describe-config), so the two cannot disagree.
 */
#include "setup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"

enum ctype {
	C_STR,
	C_SECRET,	/* a string that is never printed */
	C_INT,
	C_ENV,
	C_LOGLEVEL
};

struct setting {
	const char	*name;
	enum ctype	 type;
	const char	*def;
	int64_t		 min, max;
	size_t		 off;
	const char	*doc;
};

#define F(x)	offsetof(struct fin_config, x)
#define DAY	86400

static const struct setting settings[] = {
	/* name                     type       default                         min  max           field                    meaning */
	{ "FINANCE_ENV",            C_ENV,     "production",                   0, 0,            F(env),                  "development, test or production; only development accepts missing or short secrets" },
	{ "LOG_LEVEL",              C_LOGLEVEL, "info",                        0, 0,            F(log_level),            "debug, info, warn or error" },
	{ "DATABASE_URL",           C_STR,     "postgresql://localhost/finance", 0, 0,          F(database_url),         "libpq connection string or URI" },
	{ "REDIS_URL",              C_STR,     "redis://127.0.0.1:6379/0",     0, 0,            F(redis_url),            "redis://[:password@]host[:port][/db] or unix:/path" },
	{ "JWT_SECRET",             C_SECRET,  "",                             0, 0,            F(jwt_secret),           "HS256 key for access tokens, at least 32 bytes" },
	{ "REFRESH_TOKEN_SECRET",   C_SECRET,  "",                             0, 0,            F(refresh_token_secret), "key for hashing refresh tokens, at least 32 bytes" },
	{ "JWT_ISSUER",             C_STR,     "libfinance",                   0, 0,            F(jwt_issuer),           "iss claim of access tokens" },
	{ "JWT_AUDIENCE",           C_STR,     "libfinance-api",               0, 0,            F(jwt_audience),         "aud claim of access tokens" },
	{ "ACCESS_TOKEN_TTL",       C_INT,     "900",                          10, DAY,         F(access_token_ttl),     "access token lifetime, seconds" },
	{ "REFRESH_TOKEN_TTL",      C_INT,     "2592000",                      60, 365 * DAY,   F(refresh_token_ttl),    "refresh token lifetime, seconds" },
	{ "LOCKOUT_THRESHOLD",      C_INT,     "5",                            1, 1000,         F(lockout_threshold),    "consecutive failed logins that lock an account" },
	{ "LOCKOUT_SECONDS",        C_INT,     "1800",                         1, 30 * DAY,     F(lockout_seconds),      "how long a lockout lasts, seconds" },
	{ "PWHASH_OPSLIMIT",        C_INT,     "2",                            1, 20,           F(pwhash_opslimit),      "argon2id passes (libsodium interactive: 2)" },
	{ "PWHASH_MEMLIMIT",        C_INT,     "67108864",                     8192, 1073741824, F(pwhash_memlimit),     "argon2id memory, bytes (libsodium interactive: 64 MiB)" },
	{ "DB_CONNECT_TIMEOUT",     C_INT,     "3",                            1, 60,           F(db_connect_timeout),   "PostgreSQL connect timeout, seconds" },
	{ "DB_STATEMENT_TIMEOUT",   C_INT,     "5000",                         0, 600000,       F(db_statement_timeout), "PostgreSQL statement_timeout, milliseconds (0: none); a worker waits 2 s more for any answer, then answers 503" },
	{ "REDIS_TIMEOUT_MS",       C_INT,     "200",                          10, 10000,       F(redis_timeout_ms),     "Redis connect and command timeout, milliseconds" },
	{ "SHUTDOWN_TIMEOUT",       C_INT,     "10",                           1, 600,          F(shutdown_timeout),     "seconds in-flight requests get on SIGTERM before workers are killed" },
	{ "TRUSTED_PROXIES",        C_STR,     "",                             0, 0,            F(trusted_proxies),      "comma-separated addresses whose X-Forwarded-For is believed" },
	{ "CORS_ORIGINS",           C_STR,     "",                             0, 0,            F(cors_origins),         "comma-separated origins allowed by CORS (exact match)" },
	{ "RATE_LIMIT_IP_PER_MIN",  C_INT,     "600",                          1, 1000000,      F(rl_ip_per_min),        "requests per client IP per minute" },
	{ "RATE_LIMIT_USER_PER_MIN", C_INT,    "1200",                         1, 1000000,      F(rl_user_per_min),      "requests per authenticated user per minute" },
	{ "RATE_LIMIT_SIGNUP_PER_HOUR", C_INT, "5",                            1, 1000000,      F(rl_signup_per_hour),   "signups per client IP per hour" },
	{ "RATE_LIMIT_LOGIN_IP_PER_15MIN", C_INT, "20",                        1, 1000000,      F(rl_login_ip_per_15min), "logins per client IP per 15 minutes" },
	{ "RATE_LIMIT_LOGIN_EMAIL_PER_15MIN", C_INT, "10",                     1, 1000000,      F(rl_login_email_per_15min), "logins per email per 15 minutes" },
	{ "RATE_LIMIT_IP_WINDOW",   C_INT,     "60",                           1, 86400,        F(rl_ip_window),         "window of RATE_LIMIT_IP_PER_MIN, seconds" },
	{ "RATE_LIMIT_USER_WINDOW", C_INT,     "60",                           1, 86400,        F(rl_user_window),       "window of RATE_LIMIT_USER_PER_MIN, seconds" },
	{ "RATE_LIMIT_SIGNUP_WINDOW", C_INT,   "3600",                         1, 86400,        F(rl_signup_window),     "window of RATE_LIMIT_SIGNUP_PER_HOUR, seconds" },
	{ "RATE_LIMIT_LOGIN_WINDOW", C_INT,    "900",                          1, 86400,        F(rl_login_window),      "window of both login limits, seconds" },
	{ "SENTRY_DSN",             C_SECRET,  "",                             0, 0,            F(sentry_dsn),           "Sentry DSN for error reports (empty: off)" },
	{ "RELEASE",                C_STR,     PACKAGE_VERSION,                0, 0,            F(release),              "release name sent with error reports" },
	{ "ENVIRONMENT_NAME",       C_STR,     "production",                   0, 0,            F(environment_name),     "environment name sent with error reports" },
	{ "PDF_FONT",               C_STR,     "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0, 0, F(pdf_font), "TrueType font of PDF statements (fonts-dejavu-core); characters it lacks print as ?" },
	{ "PDF_FONT_BOLD",          C_STR,     "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 0, 0, F(pdf_font_bold), "bold TrueType font of PDF statements" },
};

static const char *const env_names[FIN_ENV__MAX] = {
	"development",		/* FIN_ENV_DEVELOPMENT */
	"test",			/* FIN_ENV_TEST */
	"production",		/* FIN_ENV_PRODUCTION */
};

static const char *const level_names[FIN_LOG__MAX] = {
	"debug",		/* FIN_LOG_DEBUG */
	"info",			/* FIN_LOG_INFO */
	"warn",			/* FIN_LOG_WARN */
	"error",		/* FIN_LOG_ERROR */
};

#define ENVFILE_LINE_MAX	4096
#define ENVFILE_ENTRIES_MAX	256

struct envfile {
	char	*name[ENVFILE_ENTRIES_MAX];
	char	*value[ENVFILE_ENTRIES_MAX];
	size_t	 n;
};

static void
envfile_clear(struct envfile *ef)
{
	size_t	 i;

	for (i = 0; i < ef->n; i++) {
		free(ef->name[i]);
		sodium_memzero(ef->value[i], strlen(ef->value[i]));
		free(ef->value[i]);
	}
	ef->n = 0;
}

static char *
trim(char *s)
{
	char	*e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
	    e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/*
 * Reads KEY=VALUE lines; '#' starts a comment line, "export " is allowed and
 * one pair of matching quotes around the value is removed, as in the
 * files that docker and systemd read.  Returns false on an unreadable file
 * or a malformed line, with the line number in why.
 */
static bool
envfile_read(const char *path, const char *shown, struct envfile *ef,
    char *why, size_t whysz)
{
	FILE	*f;
	char	 line[ENVFILE_LINE_MAX];
	size_t	 lineno = 0;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(why, whysz, "could not open env file %s: %s", shown,
		    strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char	*s, *eq, *v;
		size_t	 vl;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(why, whysz, "%s:%zu: line too long", shown, lineno);
			goto fail;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (strncmp(s, "export ", 7) == 0)
			s = trim(s + 7);
		eq = strchr(s, '=');
		if (eq == NULL || eq == s) {
			snprintf(why, whysz, "%s:%zu: expected NAME=value", shown, lineno);
			goto fail;
		}
		*eq = '\0';
		v = trim(eq + 1);
		vl = strlen(v);
		if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
			v[vl - 1] = '\0';
			v++;
		}
		if (ef->n == ENVFILE_ENTRIES_MAX) {
			snprintf(why, whysz, "%s: more than %d settings", shown,
			    ENVFILE_ENTRIES_MAX);
			goto fail;
		}
		ef->name[ef->n] = strdup(trim(s));
		ef->value[ef->n] = strdup(v);
		if (ef->name[ef->n] == NULL || ef->value[ef->n] == NULL) {
			free(ef->name[ef->n]);
			free(ef->value[ef->n]);
			snprintf(why, whysz, "out of memory reading %s", shown);
			goto fail;
		}
		ef->n++;
	}
	sodium_memzero(line, sizeof(line));
	fclose(f);
	return true;
fail:
	sodium_memzero(line, sizeof(line));
	fclose(f);
	return false;
}

static const char *
lookup(const struct envfile *ef, const char *name)
{
	const char	*v;
	size_t		 i;

	v = getenv(name);
	if (v != NULL)
		return v;
	/* Later lines win, as when a shell sources the file. */
	for (i = ef->n; i > 0; i--)
		if (strcmp(ef->name[i - 1], name) == 0)
			return ef->value[i - 1];
	return NULL;
}

static bool
pick(const char *const *names, size_t n, const char *v, int *out)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], v) == 0) {
			*out = (int)i;
			return true;
		}
	return false;
}

static bool
apply(struct fin_config *c, const struct setting *s, const char *v,
    char *why, size_t whysz)
{
	char	*base = (char *)c + s->off;
	int	 e;

	switch (s->type) {
	case C_STR:
	case C_SECRET:
		*(char **)base = strdup(v);
		if (*(char **)base == NULL) {
			snprintf(why, whysz, "out of memory");
			return false;
		}
		return true;
	case C_INT:
		if (!fin_parse_int64(v, s->min, s->max, (int64_t *)base)) {
			snprintf(why, whysz, "%s must be a whole number from "
			    "%lld to %lld", s->name, (long long)s->min,
			    (long long)s->max);
			return false;
		}
		return true;
	case C_ENV:
		if (!pick(env_names, FIN_ENV__MAX, v, &e)) {
			snprintf(why, whysz, "%s must be development, test or "
			    "production", s->name);
			return false;
		}
		*(enum fin_env *)base = (enum fin_env)e;
		return true;
	case C_LOGLEVEL:
		if (!pick(level_names, FIN_LOG__MAX, v, &e)) {
			snprintf(why, whysz, "%s must be debug, info, warn or "
			    "error", s->name);
			return false;
		}
		*(enum fin_log_level *)base = (enum fin_log_level)e;
		return true;
	}
	return false;
}

const char *
fin_config_env_path(void)
{
	const char	*path;

	path = getenv("FINANCE_ENV_FILE");
	if (path != NULL && path[0] != '\0')
		return path;
	return access(".env", R_OK) == 0 ? ".env" : NULL;
}

struct fin_config *
fin_config_load(bool need_secrets, char *why, size_t whysz)
{
	const char	*path = fin_config_env_path();

	return fin_config_load_from(path, path, need_secrets, why, whysz);
}

struct fin_config *
fin_config_load_from(const char *path, const char *shown, bool need_secrets,
    char *why, size_t whysz)
{
	struct fin_config *c;
	struct envfile	 ef = { .n = 0 };
	size_t		 i;

	if (path != NULL && !envfile_read(path, shown, &ef, why, whysz))
		goto fail_ef;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(why, whysz, "out of memory");
		goto fail_ef;
	}
	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		const char *v = lookup(&ef, settings[i].name);

		if (v == NULL)
			v = settings[i].def;
		if (!apply(c, &settings[i], v, why, whysz)) {
			envfile_clear(&ef);
			fin_config_free(c);
			return NULL;
		}
	}
	envfile_clear(&ef);

	/* Development may run with throwaway keys; nothing else may. */
	if (!need_secrets)
		return c;
	if (c->env != FIN_ENV_DEVELOPMENT) {
		if (strlen(c->jwt_secret) < FIN_SECRET_MIN) {
			snprintf(why, whysz, "JWT_SECRET is %s: set at least %d "
			    "random bytes (or FINANCE_ENV=development)",
			    c->jwt_secret[0] == '\0' ? "missing" : "too short",
			    FIN_SECRET_MIN);
			fin_config_free(c);
			return NULL;
		}
		if (strlen(c->refresh_token_secret) < FIN_SECRET_MIN) {
			snprintf(why, whysz, "REFRESH_TOKEN_SECRET is %s: set at "
			    "least %d random bytes (or FINANCE_ENV=development)",
			    c->refresh_token_secret[0] == '\0' ? "missing" :
			    "too short", FIN_SECRET_MIN);
			fin_config_free(c);
			return NULL;
		}
	} else {
		if (c->jwt_secret[0] == '\0') {
			free(c->jwt_secret);
			c->jwt_secret = strdup("development-only-jwt-secret-not-for-production");
		}
		if (c->refresh_token_secret[0] == '\0') {
			free(c->refresh_token_secret);
			c->refresh_token_secret = strdup("development-only-refresh-secret-not-for-production");
		}
		if (c->jwt_secret == NULL || c->refresh_token_secret == NULL) {
			snprintf(why, whysz, "out of memory");
			fin_config_free(c);
			return NULL;
		}
	}
	return c;
fail_ef:
	envfile_clear(&ef);
	return NULL;
}

void
fin_config_free(struct fin_config *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		char	**p;

		if (settings[i].type != C_STR && settings[i].type != C_SECRET)
			continue;
		p = (char **)((char *)c + settings[i].off);
		if (*p == NULL)
			continue;
		if (settings[i].type == C_SECRET)
			sodium_memzero(*p, strlen(*p));
		free(*p);
	}
	free(c);
}

void
fin_config_describe(FILE *f)
{
	size_t	 i;

	fprintf(f, "| variable | default | meaning |\n|---|---|---|\n");
	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		fprintf(f, "| `%s` | %s%s%s | %s |\n", settings[i].name,
		    settings[i].def[0] ? "`" : "",
		    settings[i].def[0] ? settings[i].def : "(none)",
		    settings[i].def[0] ? "`" : "", settings[i].doc);
}

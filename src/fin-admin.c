/*
 * finance-admin: what an operator does outside the API.
 *
 *   finance-admin create-admin --email E --name N    (password on stdin)
 *   finance-admin promote E
 *
 * The password is read from standard input so that it never shows in the
 * process list or the shell history.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#define PASSWORD_LINE_MAX	1024

static void
usage(void)
{
	fprintf(stderr, "usage: finance-admin create-admin --email EMAIL --name NAME"
	    "  (password on stdin)\n"
	    "       finance-admin promote EMAIL\n");
}

/* Lower-cases and trims an email as the API does. */
static void
normalise(char *s)
{
	size_t	 n, i = 0;

	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, strlen(s + i) + 1);
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
		s[--n] = '\0';
	for (i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
}

static int
report(enum fin_err e, const char *why, const char *what)
{
	if (e == FIN_OK) {
		printf("%s\n", what);
		return 0;
	}
	fprintf(stderr, "finance-admin: %s%s%s\n", fin_err_message(e),
	    why != NULL ? " " : "", why != NULL ? why : "");
	return 1;
}

int
main(int argc, char *argv[])
{
	struct fin_config *cfg;
	struct fin_ctx	*ctx;
	struct fin_client client = { "cli", "finance-admin", "cli" };
	char		 why[256], email[FIN_EMAIL_MAX + 1] = "", name[512] = "";
	char		 password[PASSWORD_LINE_MAX];
	const char	*policy = NULL;
	enum fin_err	 e;
	int		 i, rc;

	if (argc < 3) {
		usage();
		return 2;
	}
	cfg = fin_config_load(false, why, sizeof(why));
	if (cfg == NULL) {
		fprintf(stderr, "finance-admin: %s\n", why);
		return 1;
	}
	fin_log_init(cfg->log_level, "admin");
	ctx = fin_ctx_new(cfg);
	if (ctx == NULL)
		return 1;
	if (strcmp(argv[1], "promote") == 0 && argc == 3) {
		snprintf(email, sizeof(email), "%s", argv[2]);
		normalise(email);
		e = fin_admin_promote(ctx, &client, email);
		rc = report(e, e == FIN_E_NOT_FOUND ?
		    "(no live account has that email)" : NULL, "promoted to admin");
	} else if (strcmp(argv[1], "create-admin") == 0) {
		for (i = 2; i + 1 < argc; i += 2) {
			if (strcmp(argv[i], "--email") == 0)
				snprintf(email, sizeof(email), "%s", argv[i + 1]);
			else if (strcmp(argv[i], "--name") == 0)
				snprintf(name, sizeof(name), "%s", argv[i + 1]);
		}
		normalise(email);
		if (email[0] == '\0' || name[0] == '\0' || i != argc) {
			usage();
			rc = 2;
		} else if (fgets(password, sizeof(password), stdin) == NULL) {
			fprintf(stderr, "finance-admin: no password on stdin\n");
			rc = 1;
		} else {
			password[strcspn(password, "\r\n")] = '\0';
			e = fin_admin_create(ctx, &client, email, name, password,
			    &policy);
			sodium_memzero(password, sizeof(password));
			rc = report(e, policy, "admin created");
		}
	} else {
		usage();
		rc = 2;
	}
	fin_ctx_free(ctx);
	fin_config_free(cfg);
	return rc;
}

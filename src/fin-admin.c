/*
 * finance-admin: what an operator does outside the API.
 *
 *   finance-admin create-admin --email E --name N    (password on stdin)
 *   finance-admin promote E
 *   finance-admin demote E
 *
 * The password is read from standard input so that it never shows in the
 * process list or the shell history.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#define PASSWORD_LINE_MAX	1024

static void
usage(FILE *f)
{
	fprintf(f, "usage: finance-admin create-admin --email EMAIL --name NAME"
	    "  (password on stdin)\n"
	    "       finance-admin promote EMAIL\n"
	    "       finance-admin demote EMAIL\n");
}

/* The fields as the API's signup and login take them. */
static const struct fin_field create_spec[] = {
	{ "email",	FIN_F_EMAIL,	   true, 3, FIN_EMAIL_MAX, false },
	{ "name",	FIN_F_TEXT,	   true, 1, FIN_NAME_MAX,  false },
	{ NULL,		0,		   false, 0, 0,		   false },
};
static const struct fin_field promote_spec[] = {
	{ "email",	FIN_F_EMAIL_LOGIN, true, 3, FIN_EMAIL_MAX, false },
	{ NULL,		0,		   false, 0, 0,		   false },
};

/*
 * Checks the command line's email (and name) by the API's own rules, so
 * an operator cannot create an account the API would refuse; v[] gets
 * them trimmed and lower-cased.  False after saying what is wrong.
 */
static bool
check_fields(struct fin_arena *a, const struct fin_field *spec,
    const char *email, const char *name, struct fin_value *v)
{
	struct json_object *o = json_object_new_object(), *fields = NULL;
	bool		 ok;

	json_object_object_add(o, "email", json_object_new_string(email));
	if (name != NULL)
		json_object_object_add(o, "name", json_object_new_string(name));
	ok = fin_validate(a, spec, o, v, &fields) == FIN_OK;
	if (!ok && fields != NULL) {
		json_object_object_foreach(fields, k, why)
			fprintf(stderr, "finance-admin: %s %s\n", k,
			    json_object_get_string(why));
	}
	json_object_put(o);
	return ok;
}

/* One line from stdin; from a terminal, without echoing it. */
static bool
read_password(char *buf, size_t size)
{
	struct termios	 old, quiet;
	bool		 tty, ok;

	tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fprintf(stderr, "Password: ");
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	ok = fgets(buf, (int)size, stdin) != NULL;
	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	return ok;
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
	char		 why[256], password[PASSWORD_LINE_MAX];
	const char	*email = NULL, *name = NULL;
	struct fin_value v[2];
	struct fin_arena *a;
	const char	*policy = NULL;
	struct fin_user	 user;
	enum fin_err	 e;
	bool		 admin, changed, created = false;
	int		 i, rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	cfg = fin_config_load(false, why, sizeof(why));
	if (cfg == NULL) {
		fprintf(stderr, "finance-admin: %s\n", why);
		return 1;
	}
	fin_log_init(cfg->log_level, "admin");
	ctx = fin_ctx_new(cfg);
	a = fin_arena_new(1024 * 1024);
	if (ctx == NULL || a == NULL)
		return 1;
	if ((strcmp(argv[1], "promote") == 0 ||
	    strcmp(argv[1], "demote") == 0) && argc == 3) {
		admin = strcmp(argv[1], "promote") == 0;
		if (!check_fields(a, promote_spec, argv[2], NULL, v))
			rc = 2;
		else {
			e = fin_admin_set_role(ctx, &client, v[0].s, admin,
			    &changed);
			rc = report(e, e == FIN_E_NOT_FOUND ?
			    "(no live account has that email)" : NULL,
			    admin ? (changed ? "promoted to admin" :
			    "already an admin") : (changed ? "demoted to user" :
			    "already a user"));
		}
	} else if (strcmp(argv[1], "create-admin") == 0) {
		for (i = 2; i + 1 < argc; i += 2) {
			if (strcmp(argv[i], "--email") == 0)
				email = argv[i + 1];
			else if (strcmp(argv[i], "--name") == 0)
				name = argv[i + 1];
			else	/* --password among them: refused */
				break;
		}
		if (email == NULL || name == NULL || i != argc) {
			usage(stderr);
			rc = 2;
		} else if (!check_fields(a, create_spec, email, name, v))
			rc = 2;
		else if (!read_password(password, sizeof(password))) {
			fprintf(stderr, "finance-admin: no password on stdin\n");
			rc = 1;
		} else {
			password[strcspn(password, "\r\n")] = '\0';
			e = fin_auth_signup(ctx, &client, v[0].s, v[1].s,
			    password, &user, &policy);
			sodium_memzero(password, sizeof(password));
			if (e == FIN_OK) {
				e = fin_admin_set_role(ctx, &client, user.email,
				    true, &changed);
				if (e != FIN_OK)
					policy = NULL;
				created = true;
			}
			/*
			 * policy is what is wrong with the password, which
			 * WEAK_PASSWORD's own message already says.
			 */
			if (e == FIN_E_WEAK_PASSWORD)
				policy = NULL;
			if (policy != NULL)
				snprintf(why, sizeof(why), "(the password %s)",
				    policy);
			rc = report(e, policy != NULL ? why :
			    e == FIN_E_EMAIL_TAKEN ? "(finance-admin promote "
			    "EMAIL makes an existing account an admin)" :
			    created ? "(the account was created as a user: "
			    "finance-admin promote EMAIL makes it an admin)" :
			    NULL, "admin created");
		}
	} else {
		usage(stderr);
		rc = 2;
	}
	fin_arena_free(a);
	fin_ctx_free(ctx);
	fin_config_free(cfg);
	return rc;
}

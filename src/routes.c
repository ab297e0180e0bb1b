/*
 * THE route table: every endpoint of the API, its handler and its policy.
 * Patterns are relative to /api/v1 unless flagged R_ROOT.  The flags say
 * who may call an endpoint and what guards it, so a reader learns that
 * here without opening the handler (see pipeline.c for the order).
 */
#include "app.h"

/*
 * Body specs: every field a route accepts, with its type and bounds.  The
 * pipeline refuses anything else before the handler runs.
 */
#define PW_MAX	1024	/* bytes on the way in; the policy (8-128) is lib's */

const struct fin_field signup_spec[] = {
	/* name              type            required  min  max */
	{ "email",           FIN_F_EMAIL,    true,     3,   FIN_EMAIL_MAX, false },
	{ "name",            FIN_F_TEXT,     true,     1,   FIN_NAME_MAX,  false },
	{ "password",        FIN_F_STRING,   true,     1,   PW_MAX,        false },
	{ NULL,              0,              false,    0,   0,             false },
};
const struct fin_field login_spec[] = {
	/* Loose: an address signup took under an older rule still logs in. */
	{ "email",           FIN_F_EMAIL_LOGIN, true,  3,   FIN_EMAIL_MAX, false },
	{ "password",        FIN_F_STRING,   true,     1,   PW_MAX,        false },
	{ NULL,              0,              false,    0,   0,             false },
};
const struct fin_field refresh_spec[] = {
	{ "refresh_token",   FIN_F_STRING,   true,     1,   256,           false },
	{ NULL,              0,              false,    0,   0,             false },
};
const struct fin_field password_spec[] = {
	{ "current_password", FIN_F_STRING,  true,     1,   PW_MAX,        false },
	{ "new_password",    FIN_F_STRING,   true,     1,   PW_MAX,        false },
	{ NULL,              0,              false,    0,   0,             false },
};
const struct fin_field delete_me_spec[] = {
	{ "password",        FIN_F_STRING,   true,     1,   PW_MAX,        false },
	{ NULL,              0,              false,    0,   0,             false },
};

#define SAFE_INT	9007199254740991LL	/* 2^53 - 1 (API.md) */

const struct fin_field txn_create_spec[] = {
	{ "amount",          FIN_F_INT64,    true,     -SAFE_INT, SAFE_INT, false },
	{ "currency",        FIN_F_CURRENCY, true,     3,   3,             false },
	{ "description",     FIN_F_STRING,   false,    0,   500,           false },
	{ "category",        FIN_F_TEXT,     false,    0,   64,            false },
	{ "occurred_on",     FIN_F_DATE,     false,    10,  10,            false },
	{ NULL,              0,              false,    0,   0,             false },
};
const struct fin_field txn_update_spec[] = {
	{ "amount",          FIN_F_INT64,    false,    -SAFE_INT, SAFE_INT, false },
	{ "currency",        FIN_F_CURRENCY, false,    3,   3,             false },
	{ "description",     FIN_F_STRING,   false,    0,   500,           false },
	{ "category",        FIN_F_TEXT,     false,    0,   64,            false },
	{ "occurred_on",     FIN_F_DATE,     false,    10,  10,            false },
	{ NULL,              0,              false,    0,   0,             false },
};

const struct fin_field flag_spec[] = {
	{ "enabled",         FIN_F_BOOL,     true,     0,   0,             false },
	{ "rollout_percent", FIN_F_INT64,    false,    0,   100,           false },
	{ "description",     FIN_F_STRING,   false,    0,   500,           false },
	{ NULL,              0,              false,    0,   0,             false },
};

const struct route routes[] = {
	/* method     pattern                         handler                   flags                    body */
	{ M_GET,      "/health",                      h_health,                 R_PUBLIC | R_NO_RL,      NULL },
	{ M_GET,      "/ready",                       h_ready,                  R_PUBLIC | R_NO_RL,      NULL },
	{ M_GET,      "/debug/sleep",                 h_debug_sleep,            R_PUBLIC | R_TEST_ONLY,  NULL },
	{ M_GET,      "/metrics",                     h_metrics,                R_PUBLIC | R_NO_RL | R_ROOT, NULL },

	{ M_POST,     "/auth/signup",                 h_auth_signup,            R_PUBLIC | R_RL_SIGNUP,  signup_spec },
	{ M_POST,     "/auth/login",                  h_auth_login,             R_PUBLIC | R_TOKENS | R_RL_LOGIN, login_spec },
	{ M_POST,     "/auth/refresh",                h_auth_refresh,           R_PUBLIC | R_TOKENS,     refresh_spec },
	{ M_POST,     "/auth/logout",                 h_auth_logout,            R_AUTH,                  NULL },
	{ M_GET,      "/auth/me",                     h_auth_me,                R_AUTH,                  NULL },
	{ M_DELETE,   "/auth/me",                     h_auth_delete_me,         R_AUTH,                  delete_me_spec },
	{ M_POST,     "/auth/password",               h_auth_password,          R_AUTH,                  password_spec },

	{ M_GET,      "/sessions",                    h_sessions_list,          R_AUTH,                  NULL },
	{ M_DELETE,   "/sessions",                    h_sessions_revoke_others, R_AUTH,                  NULL },
	{ M_DELETE,   "/sessions/{id}",               h_session_revoke,         R_AUTH,                  NULL },

	{ M_GET,      "/audit",                       h_audit_list,             R_AUTH,                  NULL },

	{ M_POST,     "/transactions",                h_txn_create,             R_AUTH,                  txn_create_spec },
	{ M_GET,      "/transactions",                h_txn_list,               R_AUTH | R_CACHED,       NULL },
	{ M_GET,      "/transactions/summary",        h_txn_summary,            R_AUTH | R_CACHED,       NULL },
	{ M_GET,      "/transactions/{id}",           h_txn_get,                R_AUTH,                  NULL },
	{ M_PATCH,    "/transactions/{id}",           h_txn_update,             R_AUTH,                  txn_update_spec },
	{ M_DELETE,   "/transactions/{id}",           h_txn_delete,             R_AUTH,                  NULL },
	{ M_POST,     "/transactions/{id}/restore",   h_txn_restore,            R_AUTH,                  NULL },

	{ M_GET,      "/export/transactions.csv",     h_export_csv,             R_AUTH,                  NULL },
	{ M_GET,      "/export/transactions.pdf",     h_export_pdf,             R_AUTH,                  NULL },
	{ M_GET,      "/export/me",                   h_export_me,              R_AUTH,                  NULL },

	{ M_GET,      "/flags",                       h_flags,                  R_AUTH,                  NULL },
	{ M_GET,      "/admin/flags",                 h_admin_flags_list,       R_ADMIN,                 NULL },
	{ M_PUT,      "/admin/flags/{key}",           h_admin_flag_put,         R_ADMIN,                 flag_spec },
	{ M_GET,      "/admin/audit",                 h_admin_audit,            R_ADMIN,                 NULL },
	{ M_POST,     "/admin/users/{id}/restore",    h_admin_user_restore,     R_ADMIN,                 NULL },
};

const size_t nroutes = sizeof(routes) / sizeof(routes[0]);

/*
 * /sessions and /audit: the caller's devices and history.
 */
#include "app.h"

enum fin_err
h_sessions_list(struct request *req)
{
	struct json_object *o;
	enum fin_err	 e;

	e = fin_sessions_list(req->ctx, &req->principal, &o);
	if (e != FIN_OK)
		return e;
	reply_json(req, 200, o);
	return FIN_OK;
}

enum fin_err
h_session_revoke(struct request *req)
{
	enum fin_err	 e;

	e = fin_session_revoke(req->ctx, &req->client, &req->principal,
	    request_param(req, 0));
	if (e != FIN_OK)
		return e;
	reply_empty(req, 204);
	return FIN_OK;
}

enum fin_err
h_sessions_revoke_others(struct request *req)
{
	enum fin_err	 e;

	e = fin_sessions_revoke_others(req->ctx, &req->client, &req->principal);
	if (e != FIN_OK)
		return e;
	reply_empty(req, 204);
	return FIN_OK;
}

enum fin_err
h_audit_list(struct request *req)
{
	struct fin_audit_query q = { 0 };
	struct json_object *o;
	enum fin_err	 e;

	if (!request_limit(req, &q.limit))
		return FIN_E_VALIDATION_ERROR;
	q.user_id = req->principal.user_id;
	q.cursor = request_query(req, "cursor");
	e = fin_audit_list(req->ctx, &q, &o);
	if (e != FIN_OK)
		return e;
	reply_json(req, 200, o);
	return FIN_OK;
}

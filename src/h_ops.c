/*
 * Operations endpoints: liveness and readiness for load balancers.
 */
#include "app.h"

/* Liveness: answers without touching any dependency. */
enum fin_err
h_health(struct request *req)
{
	struct json_object *o;

	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ok"));
	reply_json(req, 200, o);
	return FIN_OK;
}

/* Readiness: one round trip to each dependency; 503 names what failed. */
enum fin_err
h_ready(struct request *req)
{
	struct json_object *checks, *extra;
	bool		 pg_ok, redis_ok;
	const char	*msg;

	pg_ok = fin_db_ping(req->ctx) == FIN_OK;
	redis_ok = fin_redis_ping(req->ctx) == FIN_OK;
	checks = json_object_new_object();
	json_object_object_add(checks, "postgres",
	    json_object_new_string(pg_ok ? "ok" : "unavailable"));
	json_object_object_add(checks, "redis",
	    json_object_new_string(redis_ok ? "ok" : "unavailable"));
	if (pg_ok && redis_ok) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "status", json_object_new_string("ok"));
		json_object_object_add(o, "checks", checks);
		reply_json(req, 200, o);
		return FIN_OK;
	}
	if (!pg_ok && !redis_ok)
		msg = "Service unavailable: postgres and redis are not answering.";
	else if (!pg_ok)
		msg = "Service unavailable: postgres is not answering.";
	else
		msg = "Service unavailable: redis is not answering.";
	extra = fin_arena_json(req->arena, json_object_new_object());
	if (extra != NULL)
		json_object_object_add(extra, "checks", checks);
	else
		json_object_put(checks);
	http_error(req, FIN_E_SERVICE_UNAVAILABLE, extra, msg);
	return FIN_E_SERVICE_UNAVAILABLE;
}

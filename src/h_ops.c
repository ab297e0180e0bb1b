/*
 * Operations endpoints: liveness and readiness for load balancers.
 */
#include "app.h"

#include <time.h>

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

static bool
write_stream(void *arg, const char *buf, size_t len)
{
	return resp_stream_write(arg, buf, len);
}

/*
 * Prometheus metrics summed over all workers.  nginx serves this path to
 * loopback only (deploy/nginx.conf).
 */
enum fin_err
h_metrics(struct request *req)
{
	const char	*names[FIN_METRICS_ROUTES];
	const char	*methods[FIN_METRICS_METHODS];
	size_t		 i, n;

	names[0] = "unmatched";
	for (i = 0, n = 1; i < nroutes && n < FIN_METRICS_ROUTES; i++)
		names[n++] = routes[i].pattern;
	for (i = 0; i < FIN_METRICS_METHODS; i++)
		methods[i] = i < M__MAX ? method_name((enum method)i) : "OTHER";
	if (!fin_metrics_attached())
		return FIN_E_SERVICE_UNAVAILABLE;
	if (!resp_stream_begin(req, 200, "text/plain; version=0.0.4; charset=utf-8"))
		return FIN_OK;
	if (fin_metrics_render(names, n, methods, FIN_METRICS_METHODS,
	    write_stream, req) != FIN_OK)
		fin_log(FIN_LOG_WARN, "metrics", "could not render metrics");
	return FIN_OK;
}

/*
 * A request that takes ?ms= milliseconds (at most 10 s): lets the
 * end-to-end tests hold a request in flight across SIGTERM and SIGHUP.
 * Routed only when FINANCE_ENV=test.
 */
enum fin_err
h_debug_sleep(struct request *req)
{
	struct json_object *o;
	struct timespec	 ts;
	const char	*v = request_query(req, "ms");
	int64_t		 ms = 1000;

	if (v != NULL && !fin_parse_int64(v, 0, 10000, &ms))
		return FIN_E_VALIDATION_ERROR;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	/* Finish the sleep even when SIGTERM interrupts it. */
	while (nanosleep(&ts, &ts) != 0)
		;
	o = json_object_new_object();
	json_object_object_add(o, "slept_ms", json_object_new_int64(ms));
	reply_json(req, 200, o);
	return FIN_OK;
}

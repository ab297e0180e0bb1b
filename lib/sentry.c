/*
 * Error reports to Sentry, as envelopes (https://develop.sentry.dev/sdk/
 * envelopes/): a header line, an item header line and the event, each a
 * JSON object on its own line, POSTed with libcurl to
 * <scheme>://<host>/api/<project>/envelope/ with X-Sentry-Auth.  Only ids,
 * the route and a message go out: never a password, token, cookie or body.
 */
#include "setup.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <stdlib.h>

#include <curl/curl.h>

#include "internal.h"

#define DSN_PART_MAX	256
/*
 * A send blocks its caller (a worker after its response, the master after
 * a crash), and a Sentry that accepts but never answers would hold it for
 * the whole timeout: short ones, which a working Sentry (an answer in
 * tens of milliseconds) never reaches.  libcurl has no clean way to send
 * without waiting for the answer.  The worker also limits how often it
 * sends (src/worker.c, report()).
 */
#define SEND_TIMEOUT_MS	1000L
#define CONNECT_TIMEOUT_MS 250L

struct dsn {
	char	 key[DSN_PART_MAX];
	char	 url[DSN_PART_MAX * 3];	/* the envelope endpoint */
};

/* scheme://key[:secret]@host[:port][/path]/project */
static bool
parse_dsn(const char *s, struct dsn *d)
{
	const char	*scheme_end, *at, *host, *slash, *colon;
	size_t		 n;

	scheme_end = strstr(s, "://");
	if (scheme_end == NULL)
		return false;
	n = (size_t)(scheme_end - s);
	if (!((n == 4 && strncmp(s, "http", 4) == 0) ||
	    (n == 5 && strncmp(s, "https", 5) == 0)))
		return false;
	at = strchr(scheme_end + 3, '@');
	if (at == NULL)
		return false;
	colon = memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3));
	n = (size_t)((colon != NULL ? colon : at) - (scheme_end + 3));
	if (n == 0 || n >= sizeof(d->key))
		return false;
	memcpy(d->key, scheme_end + 3, n);
	d->key[n] = '\0';
	host = at + 1;
	slash = strrchr(host, '/');
	if (slash == NULL || slash[1] == '\0')
		return false;
	/* url = scheme://host[:port][/path] + /api/<project>/envelope/ */
	if (snprintf(d->url, sizeof(d->url), "%.*s%.*s/api/%s/envelope/",
	    (int)(scheme_end - s + 3), s, (int)(slash - host), host,
	    slash + 1) >= (int)sizeof(d->url))
		return false;
	return true;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

enum fin_err
fin_sentry_capture(const struct fin_config *cfg,
    const struct fin_sentry_event *ev)
{
	struct dsn	 d;
	struct json_object *hdr, *item, *event, *tags, *user, *msg;
	struct curl_slist *headers = NULL;
	const char	*event_s;
	char		 id[37], event_id[33], ts[32], auth[DSN_PART_MAX + 128];
	char		*envelope;
	size_t		 i, j, len;
	CURL		*c;
	CURLcode	 rc;
	long		 status = 0;

	if (cfg->sentry_dsn == NULL || cfg->sentry_dsn[0] == '\0')
		return FIN_OK;
	if (!parse_dsn(cfg->sentry_dsn, &d)) {
		fin_log(FIN_LOG_WARN, "sentry_dsn_invalid", "could not parse SENTRY_DSN");
		return FIN_E_INTERNAL_ERROR;
	}
	fin_uuid_v4(id);
	for (i = 0, j = 0; id[i] != '\0'; i++)
		if (id[i] != '-')
			event_id[j++] = id[i];
	event_id[j] = '\0';
	fin_time_rfc3339(time(NULL), ts);

	event = json_object_new_object();
	json_object_object_add(event, "event_id", json_object_new_string(event_id));
	json_object_object_add(event, "timestamp", json_object_new_string(ts));
	json_object_object_add(event, "platform", json_object_new_string("c"));
	json_object_object_add(event, "logger", json_object_new_string("libfinance"));
	json_object_object_add(event, "level", json_object_new_string(ev->level));
	json_object_object_add(event, "release", json_object_new_string(cfg->release));
	json_object_object_add(event, "environment",
	    json_object_new_string(cfg->environment_name));
	msg = json_object_new_object();
	json_object_object_add(msg, "formatted", json_object_new_string(ev->message));
	json_object_object_add(event, "message", msg);
	tags = json_object_new_object();
	if (ev->route != NULL)
		json_object_object_add(tags, "route", json_object_new_string(ev->route));
	if (ev->request_id != NULL)
		json_object_object_add(tags, "request_id",
		    json_object_new_string(ev->request_id));
	json_object_object_add(event, "tags", tags);
	if (ev->user_id != NULL) {
		user = json_object_new_object();
		json_object_object_add(user, "id", json_object_new_string(ev->user_id));
		json_object_object_add(event, "user", user);
	}
	event_s = json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN);

	hdr = json_object_new_object();
	json_object_object_add(hdr, "event_id", json_object_new_string(event_id));
	json_object_object_add(hdr, "sent_at", json_object_new_string(ts));
	item = json_object_new_object();
	json_object_object_add(item, "type", json_object_new_string("event"));
	json_object_object_add(item, "length",
	    json_object_new_int64((int64_t)strlen(event_s)));
	len = strlen(json_object_to_json_string_ext(hdr, JSON_C_TO_STRING_PLAIN)) +
	    strlen(json_object_to_json_string_ext(item, JSON_C_TO_STRING_PLAIN)) +
	    strlen(event_s) + 4;
	envelope = malloc(len);
	if (envelope == NULL) {
		json_object_put(hdr);
		json_object_put(item);
		json_object_put(event);
		return FIN_E_INTERNAL_ERROR;
	}
	snprintf(envelope, len, "%s\n%s\n%s\n",
	    json_object_to_json_string_ext(hdr, JSON_C_TO_STRING_PLAIN),
	    json_object_to_json_string_ext(item, JSON_C_TO_STRING_PLAIN), event_s);
	json_object_put(hdr);
	json_object_put(item);
	json_object_put(event);

	snprintf(auth, sizeof(auth), "X-Sentry-Auth: Sentry sentry_version=7, "
	    "sentry_client=libfinance/%s, sentry_key=%s", PACKAGE_VERSION, d.key);
	c = curl_easy_init();
	if (c == NULL) {
		free(envelope);
		return FIN_E_INTERNAL_ERROR;
	}
	headers = curl_slist_append(headers, "Content-Type: application/x-sentry-envelope");
	headers = curl_slist_append(headers, auth);
	curl_easy_setopt(c, CURLOPT_URL, d.url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, envelope);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(envelope));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, SEND_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	free(envelope);
	if (rc != CURLE_OK || status < 200 || status > 299) {
		fin_log(FIN_LOG_WARN, "sentry_send_failed", "could not send an "
		    "error report: %s (status %ld)", rc != CURLE_OK ?
		    curl_easy_strerror(rc) : "refused", status);
		return FIN_E_SERVICE_UNAVAILABLE;
	}
	return FIN_OK;
}

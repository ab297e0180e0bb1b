/*
 * Structured logging: one JSON object per line on stderr, which systemd's
 * journal and any log shipper take as is.  A line is written with a single
 * write(2) so that lines from concurrent workers never interleave.
 * Nothing secret is ever passed here: callers log ids, never tokens,
 * passwords or bodies.
 */
#include "setup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define LOG_LINE_MAX	8192	/* longer lines are cut, and say so */

/* Process-wide, set once at start-up from the config. */
static enum fin_log_level min_level = FIN_LOG_INFO;
static char component[32] = "finance";

static const char *const level_names[FIN_LOG__MAX] = {
	"debug",		/* FIN_LOG_DEBUG */
	"info",			/* FIN_LOG_INFO */
	"warn",			/* FIN_LOG_WARN */
	"error",		/* FIN_LOG_ERROR */
};

void
fin_log_init(enum fin_log_level level, const char *name)
{
	min_level = level;
	if (name != NULL)
		snprintf(component, sizeof(component), "%s", name);
}

bool
fin_log_enabled(enum fin_log_level level)
{
	return level >= min_level && level < FIN_LOG__MAX;
}

static void
timestamp(char out[40])
{
	struct timeval	 tv;
	struct tm	 tm;
	char		 base[24];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03dZ", base, (int)(tv.tv_usec / 1000) % 1000);
}

static void
emit(const char *s, size_t len)
{
	char	 line[LOG_LINE_MAX + 1];
	ssize_t	 w;

	if (len > LOG_LINE_MAX - 1) {
		/* Still one line, but no longer valid JSON: say it was cut. */
		static const char cut[] = "...(cut)";

		memcpy(line, s, LOG_LINE_MAX - sizeof(cut));
		memcpy(line + LOG_LINE_MAX - sizeof(cut), cut, sizeof(cut) - 1);
		len = LOG_LINE_MAX - 1;
	} else
		memcpy(line, s, len);
	line[len++] = '\n';
	do
		w = write(STDERR_FILENO, line, len);
	while (w < 0 && errno == EINTR);
}

void
fin_log_json(enum fin_log_level level, const char *event,
    struct json_object *fields)
{
	struct json_object	*o;
	const char		*s;
	size_t			 len;
	char			 ts[40];

	if (!fin_log_enabled(level))
		return;
	o = json_object_new_object();
	if (o == NULL)
		return;
	timestamp(ts);
	json_object_object_add(o, "ts", json_object_new_string(ts));
	json_object_object_add(o, "level", json_object_new_string(level_names[level]));
	json_object_object_add(o, "component", json_object_new_string(component));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "event", json_object_new_string(event));
	if (fields != NULL) {
		json_object_object_foreach(fields, k, v)
			json_object_object_add(o, k, json_object_get(v));
	}
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (s != NULL)
		emit(s, len);
	json_object_put(o);
}

void
fin_log(enum fin_log_level level, const char *event, const char *fmt, ...)
{
	struct json_object	*f;
	char			 msg[2048];
	va_list			 ap;

	if (!fin_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f = json_object_new_object();
	if (f == NULL)
		return;
	json_object_object_add(f, "msg", json_object_new_string(msg));
	fin_log_json(level, event, f);
	json_object_put(f);
}

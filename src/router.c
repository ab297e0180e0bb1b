/*
 * Matches a path against the route table.  Patterns are literal segments
 * and {captures}; among the patterns that match a path, the one with
 * literal segments earliest wins (/transactions/summary over
 * /transactions/{id}), and the method is then chosen among that pattern's
 * rows, so a wrong method answers 405 with exactly that pattern's Allow.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

#define MAX_SEGMENTS	16

/*
 * Compares pattern and path segment by segment.  Returns -1 on no match,
 * else a score with one bit per segment (most significant first) set where
 * the pattern's segment is literal: higher is more specific.
 */
static long
match_pattern(const char *pat, const char *path, const char **caps,
    size_t *ncaps, struct fin_arena *a)
{
	long	 score = 0;
	size_t	 nseg = 0;

	*ncaps = 0;
	for (;;) {
		const char	*pe, *se;
		size_t		 pl, sl;

		if (*pat == '\0' && *path == '\0')
			return score;
		if (*pat != '/' || *path != '/')
			return -1;
		pat++;
		path++;
		pe = strchr(pat, '/');
		se = strchr(path, '/');
		pl = pe != NULL ? (size_t)(pe - pat) : strlen(pat);
		sl = se != NULL ? (size_t)(se - path) : strlen(path);
		if (++nseg > MAX_SEGMENTS || sl == 0)
			return -1;
		score <<= 1;
		if (pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}') {
			if (*ncaps == MAX_PARAMS)
				return -1;
			if (a != NULL) {
				caps[*ncaps] = fin_arena_strndup(a, path, sl);
				if (caps[*ncaps] == NULL)
					return -1;
			}
			(*ncaps)++;
		} else {
			if (pl != sl || memcmp(pat, path, pl) != 0)
				return -1;
			score |= 1;
		}
		pat += pl;
		path += sl;
	}
}

enum route_match
router_match(const struct route *table, size_t n, enum method m,
    const char *path, bool root, const struct route **out,
    const char **params, size_t *nparams, struct fin_arena *a,
    bool allow[M__MAX])
{
	const char	*best_pattern = NULL;
	long		 best = -1, score;
	size_t		 i, nc;
	const char	*caps[MAX_PARAMS];

	*out = NULL;
	*nparams = 0;
	memset(allow, 0, sizeof(bool) * M__MAX);
	for (i = 0; i < n; i++) {
		if (((table[i].flags & R_ROOT) != 0) != root)
			continue;
		score = match_pattern(table[i].pattern, path, caps, &nc, NULL);
		if (score > best) {
			best = score;
			best_pattern = table[i].pattern;
		}
	}
	if (best_pattern == NULL)
		return ROUTE_NO_PATH;
	for (i = 0; i < n; i++) {
		if (strcmp(table[i].pattern, best_pattern) != 0 ||
		    ((table[i].flags & R_ROOT) != 0) != root)
			continue;
		allow[table[i].method] = true;
		/* HEAD is GET without a body. */
		if (table[i].method == M_GET)
			allow[M_HEAD] = true;
		if (table[i].method == m || (m == M_HEAD && table[i].method == M_GET))
			*out = &table[i];
	}
	allow[M_OPTIONS] = true;
	if (*out == NULL)
		return ROUTE_NO_METHOD;
	(void)match_pattern((*out)->pattern, path, params, nparams, a);
	return ROUTE_FOUND;
}

size_t
router_allow_header(const bool allow[M__MAX], char *out, size_t outsz)
{
	size_t	 len = 0;
	int	 m, w;

	out[0] = '\0';
	for (m = 0; m < M__MAX; m++) {
		if (!allow[m])
			continue;
		w = snprintf(out + len, outsz - len, "%s%s", len ? ", " : "",
		    method_name((enum method)m));
		if (w < 0 || (size_t)w >= outsz - len)
			break;
		len += (size_t)w;
	}
	return len;
}

/*
 * The request arena: bump allocation from a chain of blocks, freed all at
 * once by fin_arena_reset().  Library objects (PGresult, json_object,
 * redisReply) are tied to it with fin_arena_defer() so that a handler never
 * frees anything one by one.  The first block is kept across resets so that
 * a steady-state request allocates nothing from malloc.
 */
#include "setup.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ARENA_BLOCK	(64 * 1024)
#define ARENA_ALIGN	16

struct block {
	struct block	*next;
	size_t		 size;		/* usable bytes after the header */
	size_t		 used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct deferred {
	struct deferred	*next;
	void		(*fn)(void *);
	void		*p;
};

struct fin_arena {
	struct block	*head;		/* current block; the first one is kept */
	struct block	*first;
	struct deferred	*defers;
	size_t		 total;		/* bytes in blocks, headers included */
	size_t		 max;
	size_t		 used;
};

static struct block *
block_new(struct fin_arena *a, size_t want)
{
	struct block	*b;
	size_t		 size;

	size = want > ARENA_BLOCK ? want : ARENA_BLOCK;
	if (a->total + size + sizeof(*b) > a->max)
		return NULL;
	b = malloc(sizeof(*b) + size);
	if (b == NULL)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->used = 0;
	a->total += size + sizeof(*b);
	return b;
}

struct fin_arena *
fin_arena_new(size_t max_bytes)
{
	struct fin_arena *a;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->max = max_bytes;
	a->first = block_new(a, ARENA_BLOCK);
	if (a->first == NULL) {
		free(a);
		return NULL;
	}
	a->head = a->first;
	return a;
}

void
fin_arena_reset(struct fin_arena *a)
{
	struct deferred	*d;
	struct block	*b, *next;

	if (a == NULL)
		return;
	/* Destructors may use arena memory, so they run before blocks go. */
	while ((d = a->defers) != NULL) {
		a->defers = d->next;
		d->fn(d->p);
	}
	for (b = a->first->next; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->first->next = NULL;
	a->first->used = 0;
	a->head = a->first;
	a->total = a->first->size + sizeof(*a->first);
	a->used = 0;
}

void
fin_arena_free(struct fin_arena *a)
{
	if (a == NULL)
		return;
	fin_arena_reset(a);
	free(a->first);
	free(a);
}

void *
fin_arena_alloc(struct fin_arena *a, size_t n)
{
	struct block	*b;
	size_t		 need;
	void		*p;

	if (n > a->max)
		return NULL;
	need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (need == 0)
		need = ARENA_ALIGN;
	b = a->head;
	if (b->size - b->used < need) {
		b = block_new(a, need);
		if (b == NULL)
			return NULL;
		a->head->next = b;
		a->head = b;
	}
	p = b->data + b->used;
	b->used += need;
	a->used += need;
	return p;
}

void *
fin_arena_zalloc(struct fin_arena *a, size_t n)
{
	void	*p;

	p = fin_arena_alloc(a, n);
	if (p != NULL)
		memset(p, 0, n);
	return p;
}

char *
fin_arena_strndup(struct fin_arena *a, const char *s, size_t n)
{
	char	*p;

	if (n == SIZE_MAX)
		return NULL;
	p = fin_arena_alloc(a, n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
fin_arena_strdup(struct fin_arena *a, const char *s)
{
	return fin_arena_strndup(a, s, strlen(s));
}

char *
fin_arena_printf(struct fin_arena *a, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	char	*p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = fin_arena_alloc(a, (size_t)n + 1);
	if (p == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

enum fin_err
fin_arena_defer(struct fin_arena *a, void (*fn)(void *), void *p)
{
	struct deferred	*d;

	d = fin_arena_alloc(a, sizeof(*d));
	if (d == NULL)
		return FIN_E_INTERNAL_ERROR;
	d->fn = fn;
	d->p = p;
	d->next = a->defers;
	a->defers = d;
	return FIN_OK;
}

static void
put_json(void *p)
{
	json_object_put(p);
}

struct json_object *
fin_arena_json(struct fin_arena *a, struct json_object *obj)
{
	if (obj == NULL)
		return NULL;
	if (fin_arena_defer(a, put_json, obj) != FIN_OK) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

size_t
fin_arena_used(const struct fin_arena *a)
{
	return a->used;
}

/*
 * THE route table: every endpoint of the API, its handler and its policy.
 * Patterns are relative to /api/v1 unless flagged R_ROOT.  The flags say
 * who may call an endpoint and what guards it, so a reader learns that
 * here without opening the handler (see pipeline.c for the order).
 */
#include "app.h"

const struct route routes[] = {
	/* method     pattern                         handler               flags */
	{ M_GET,      "/health",                      h_health,             R_PUBLIC },
	{ M_GET,      "/ready",                       h_ready,              R_PUBLIC },
};

const size_t nroutes = sizeof(routes) / sizeof(routes[0]);

/*
 * First include of every lib/ source file: the configure results and the feature
 * macros, so that every file sees the same libc interface.
 */
#ifndef FIN_SETUP_H
#define FIN_SETUP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FIN_UNUSED	__attribute__((unused))
#define FIN_PRINTF(f, a) __attribute__((format(printf, f, a)))

#endif /* FIN_SETUP_H */

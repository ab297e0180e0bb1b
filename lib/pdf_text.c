/*
 * Text for the PDF statement: only characters the embedded font can
 * draw, cut to a column's width with an ellipsis.
 *
 * libharu (2.3.0) draws a character the font has no glyph for as the
 * font's .notdef box, or as nothing, and its UTF-8 encoder carries only
 * the Basic Multilingual Plane: a character beyond U+FFFF (every emoji of
 * U+1Fxxx) corrupts the text around it.  So before any text reaches
 * libharu, each character is checked against the font's own character
 * map -- the (3,1) format 4 cmap, the one libharu maps text with -- and
 * one the font lacks becomes a visible '?'.  Reading the map, rather
 * than listing what DejaVu covers, keeps this right for any PDF_FONT.
 *
 * What DejaVu Sans (fonts-dejavu-core 2.37) has: Latin with every
 * European accent ("Café", "Zürich", "Łódź"), Greek, Cyrillic, Armenian,
 * Georgian, Hebrew and Arabic letters (drawn unshaped, left to right: a
 * limit of libharu), IPA, currency signs (€ £ ¥ ₹ ₿), punctuation (– — …
 * “ ”), arrows, box drawing and many symbols of U+2600-U+27BF (☺ ♥ ✓).
 * What it lacks: CJK ideographs, kana and hangul ("東京" prints "??"),
 * Thai and the Indic scripts, and every emoji outside the BMP ("🎉"
 * prints "?").  tests/unit/check_export.c checks these against the font.
 */
#include "setup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define TTF_TABLES_MAX	256		/* an sfnt has a few dozen */
#define CMAP_MAX	(4 * 1024 * 1024)	/* DejaVu Sans's is 12 KiB */

/* ------------------------------------------------------------------ */
/* The font's character map                                            */
/* ------------------------------------------------------------------ */

static uint16_t
be16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

bool
Fin_glyphs_has(const struct fin_glyphs *g, uint32_t cp)
{
	return cp < FIN_GLYPHS_BMP && (g->bits[cp >> 3] & (1u << (cp & 7)));
}

void
Fin_glyphs_add(struct fin_glyphs *g, uint32_t cp)
{
	if (cp < FIN_GLYPHS_BMP)
		g->bits[cp >> 3] |= (uint8_t)(1u << (cp & 7));
}

/*
 * A format 4 subtable (OpenType spec, "cmap"): segments of codes, each
 * mapped by a delta or through the glyph id array.  Glyph 0 is .notdef,
 * which is "no glyph".  Every offset is checked against n.
 */
static bool
format4(const unsigned char *t, size_t n, struct fin_glyphs *g)
{
	size_t		 segx2, i, ends, starts, deltas, ranges, pos;
	uint32_t	 c, st, en;
	uint16_t	 delta, ro, gid;

	if (n < 14)
		return false;
	if (be16(t + 2) < n)
		n = be16(t + 2);
	segx2 = be16(t + 6);
	if (segx2 == 0 || segx2 % 2 != 0 || 16 + 4 * segx2 > n)
		return false;
	ends = 14;
	starts = ends + segx2 + 2;
	deltas = starts + segx2;
	ranges = deltas + segx2;
	for (i = 0; i < segx2; i += 2) {
		en = be16(t + ends + i);
		st = be16(t + starts + i);
		delta = be16(t + deltas + i);
		ro = be16(t + ranges + i);
		for (c = st; c <= en && c < 0xFFFF; c++) {
			if (ro == 0)
				gid = (uint16_t)(c + delta);
			else {
				pos = ranges + i + ro + 2 * (size_t)(c - st);
				if (pos + 2 > n)
					break;
				gid = be16(t + pos);
				if (gid != 0)
					gid = (uint16_t)(gid + delta);
			}
			if (gid != 0)
				Fin_glyphs_add(g, c);
		}
	}
	return true;
}

/*
 * Reads which BMP characters the TrueType font at path has glyphs for.
 * On false, why says what went wrong (for the log: the path is config,
 * never a client's).
 */
bool
Fin_glyphs_load(const char *path, struct fin_glyphs *g, char *why,
    size_t whysz)
{
	unsigned char	 hdr[12], rec[16], *cmap = NULL;
	uint32_t	 off = 0, len = 0, soff;
	size_t		 i, ntables, nsub;
	bool		 ok = false;
	FILE		*f;

	memset(g, 0, sizeof(*g));
	if ((f = fopen(path, "rb")) == NULL) {
		snprintf(why, whysz, "could not open %s: %s", path, strerror(errno));
		return false;
	}
	if (fread(hdr, 1, sizeof(hdr), f) != sizeof(hdr))
		goto bad;
	ntables = be16(hdr + 4);
	if (ntables > TTF_TABLES_MAX)
		goto bad;
	for (i = 0; i < ntables; i++) {
		if (fread(rec, 1, sizeof(rec), f) != sizeof(rec))
			goto bad;
		if (memcmp(rec, "cmap", 4) == 0) {
			off = be32(rec + 8);
			len = be32(rec + 12);
		}
	}
	if (len < 4 || len > CMAP_MAX)
		goto bad;
	if ((cmap = malloc(len)) == NULL) {
		snprintf(why, whysz, "out of memory reading %s", path);
		goto out;
	}
	if (fseek(f, (long)off, SEEK_SET) != 0 ||
	    fread(cmap, 1, len, f) != len)
		goto bad;
	nsub = be16(cmap + 2);
	for (i = 0; i < nsub && 4 + 8 * i + 8 <= len; i++) {
		const unsigned char *r = cmap + 4 + 8 * i;

		soff = be32(r + 4);
		if (be16(r) != 3 || be16(r + 2) != 1 || soff >= len - 2 ||
		    be16(cmap + soff) != 4)
			continue;
		if (format4(cmap + soff, len - soff, g)) {
			ok = true;
			goto out;
		}
	}
bad:
	snprintf(why, whysz, "%s is not a TrueType font with a Unicode "
	    "(3,1) format 4 character map", path);
out:
	free(cmap);
	fclose(f);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Text                                                                */
/* ------------------------------------------------------------------ */

/*
 * Decodes one UTF-8 character of s (n bytes left, n > 0) into *cp and
 * returns its length; a malformed, overlong or surrogate sequence is one
 * byte of U+FFFD, so that every byte is consumed.
 */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t		 len, i;
	uint32_t	 c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		len = 2;
		c = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		len = 3;
		c = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		len = 4;
		c = s[0] & 0x07;
	} else
		goto bad;
	if (len > n)
		goto bad;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			goto bad;
		c = c << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10FFFF)))
		goto bad;
	*cp = c;
	return len;
bad:
	*cp = 0xFFFD;
	return 1;
}

/*
 * Copies in to out keeping what the font can draw: a control character
 * (C0, DEL, C1: the newlines and tabs of a description) becomes a space,
 * a character the font has no glyph for, one beyond U+FFFF and a
 * malformed byte become '?'.  The result is never longer than in, so
 * strlen(in) + 1 bytes of out always suffice (false if outsz is less),
 * and out may be in itself.
 */
bool
Fin_pdf_text_safe(const struct fin_glyphs *g, const char *in, char *out,
    size_t outsz)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t		 n = strlen(in), i = 0, j = 0, k;
	uint32_t	 cp;

	if (outsz < n + 1)
		return false;
	while (i < n) {
		k = utf8_next(s + i, n - i, &cp);
		if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
			out[j++] = ' ';
		else if (cp == 0xFFFD && k == 1 && s[i] >= 0x80)
			out[j++] = '?';
		else if (!Fin_glyphs_has(g, cp))
			out[j++] = '?';
		else {
			memmove(out + j, s + i, k);
			j += k;
		}
		i += k;
	}
	out[j] = '\0';
	return true;
}

/*
 * How many bytes of s fit in maxw points.  When all of s fits, that is
 * strlen(s) and *cut is false.  Otherwise *cut is true and the prefix
 * returned leaves room for an ellipsis of ellipsis_w points after it; it
 * ends on a character boundary and without trailing spaces, so the cut
 * reads "Groceries at the…", not "Groceries at the …".
 */
size_t
Fin_pdf_fit(const char *s, float maxw, float ellipsis_w,
    fin_glyph_width_fn *width, void *arg, bool *cut)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t		 n = strlen(s), i = 0, k, fit = 0;
	float		 w = 0, room = maxw - ellipsis_w;
	uint32_t	 cp;

	*cut = false;
	while (i < n) {
		k = utf8_next(u + i, n - i, &cp);
		w += width(arg, cp);
		if (w <= room)
			fit = i + k;
		if (w > maxw)
			break;
		i += k;
	}
	if (i >= n)
		return n;
	*cut = true;
	while (fit > 0 && s[fit - 1] == ' ')
		fit--;
	return fit;
}

/* The width of s in points. */
float
Fin_pdf_width(const char *s, fin_glyph_width_fn *width, void *arg)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t		 n = strlen(s), i = 0;
	float		 w = 0;
	uint32_t	 cp;

	while (i < n) {
		i += utf8_next(u + i, n - i, &cp);
		w += width(arg, cp);
	}
	return w;
}

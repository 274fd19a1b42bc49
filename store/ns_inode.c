/*
 * store/ns_inode.c — the INODE RECORD codec (store/ns_format.h, man/kvfs.5 "Inode record"):
 * struct ns_inode to and from the header bytes.  Everyone who reads or writes inode records
 * goes through here: namespace.c, kvfs-check's phase 5 and the tests.  It does not know about
 * keys, trees or the inline data after the header (the caller checks that its length is
 * `size`, or 0).
 *
 * Two formats, told apart by byte 2 (the layout is in ns_format.h):
 *   v1  the original 88-byte fixed header: st_mode as LE u32, whose upper 16 bits are always
 *       zero, so bytes 2 and 3 are 0;
 *   v2  "compact": mode as LE u16, byte 2 = NS_INODE_V2, a u16 of presence bits, then only
 *       the fields that are not zero (times as deltas from mtime), as LEB128 varints.
 * Writers always write v2; a v1 record becomes v2 when it is next rewritten.
 *
 * Invariants:
 *   INO-1  v2 is canonical: one header per struct ns_inode.  decode accepts only what encode
 *          writes — a present bit for a zero field, a varint with a redundant high byte (a
 *          last byte of 0), a value past its field's width or an unknown present bit is
 *          -EUCLEAN — so damage is more often caught, and decode then encode gives back the
 *          same bytes (tests/check_ns_format.c).
 *   INO-2  decode reads nothing at or past rec + len, whatever the bytes.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>

#include "store/ns_format.h"

/* v1 header: fixed offsets (man/kvfs.5 "Inode record", "Version 1") */
#define V1_MODE 0    /* u32 */
#define V1_NLINK 4   /* u32 */
#define V1_UID 8     /* u32 */
#define V1_GID 12    /* u32 */
#define V1_SIZE 16   /* u64 */
#define V1_ATIME 24  /* s64 */
#define V1_MTIME 32  /* s64 */
#define V1_CTIME 40  /* s64 */
#define V1_GEN 48    /* u64 */
#define V1_RDEV 56   /* u64 */
#define V1_BLOCKS 64 /* u64 */
#define V1_PARENT 72 /* u64 */
#define V1_FLAGS 80  /* u32, then u32 zero */
_Static_assert(V1_FLAGS + 8 == NS_INODE_V1_HDR, "v1 header length");

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static uint64_t zigzag(uint64_t d) { return (d << 1) ^ (uint64_t)-(int64_t)(d >> 63); }
static uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1); }

size_t ns_inode_encode(const struct ns_inode *in, uint8_t *buf)
{
	assert(in->mode <= 0xffff); /* S_IFMT | 07777 */
	/* deltas modulo 2^64: exact for any two s64, no signed overflow */
	uint64_t mt = (uint64_t)in->mtime;
	uint64_t da = (uint64_t)in->atime - mt, dc = (uint64_t)in->ctime - mt;
	const uint64_t f[NS_INODE_NFIELDS] = {
		[NS_IN_NLINK] = in->nlink, [NS_IN_UID] = in->uid, [NS_IN_GID] = in->gid,
		[NS_IN_SIZE] = in->size, [NS_IN_MTIME] = mt, [NS_IN_ATIME] = zigzag(da),
		[NS_IN_CTIME] = zigzag(dc), [NS_IN_GEN] = in->gen, [NS_IN_RDEV] = in->rdev,
		[NS_IN_BLOCKS] = in->blocks, [NS_IN_PARENT] = in->parent,
		[NS_IN_FLAGS] = in->flags,
	};
	uint16_t present = 0;
	size_t n = NS_INODE_V2_FIXED;
	for (unsigned i = 0; i < NS_INODE_NFIELDS; i++) {
		if (!f[i])
			continue;
		present |= (uint16_t)(1u << i);
		if (i == NS_IN_MTIME) {
			st64(buf + n, f[i]);
			n += 8;
		} else {
			n += put_varint(buf + n, f[i]);
		}
	}
	st16(buf, (uint16_t)in->mode);
	buf[2] = NS_INODE_V2;
	st16(buf + 3, present);
	assert(n <= NS_INODE_HDR_MAX);
	return n;
}

/* A canonical varint of at most `bits` bits at *pos, not past end (INO-1, INO-2). */
static int get_varint(const uint8_t *rec, size_t len, size_t *pos, unsigned bits, uint64_t *v,
		      const char **why)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*pos >= len) {
			*why = "a field runs past the end of the record";
			return -EUCLEAN;
		}
		uint8_t b = rec[(*pos)++];
		if (shift == 63 && b > 1) {
			*why = "a varint longer than 64 bits";
			return -EUCLEAN;
		}
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			if (b == 0 && shift) {
				*why = "a varint with a redundant last byte";
				return -EUCLEAN;
			}
			if (bits < 64 && x >> bits) {
				*why = "a 32-bit field above 2^32 - 1";
				return -EUCLEAN;
			}
			*v = x;
			return 0;
		}
	}
	*why = "a varint longer than 64 bits";
	return -EUCLEAN;
}

static int decode_v2(const uint8_t *rec, size_t len, struct ns_inode *out, const char **why)
{
	if (len < NS_INODE_V2_FIXED) {
		*why = "a v2 header shorter than 5 bytes";
		return -EUCLEAN;
	}
	uint16_t present = ld16(rec + 3);
	if (present >> NS_INODE_NFIELDS) {
		*why = "unknown bits in the v2 present field";
		return -EUCLEAN;
	}
	uint64_t f[NS_INODE_NFIELDS] = { 0 };
	size_t pos = NS_INODE_V2_FIXED;
	/* Only the present fields, in order (a get decodes one header: this is on its path). */
	for (unsigned bits = present; bits; bits &= bits - 1) {
		unsigned i = (unsigned)__builtin_ctz(bits);
		if (i != NS_IN_MTIME && pos < len && rec[pos] < 0x80) {
			f[i] = rec[pos++]; /* a one-byte varint: canonical, fits every field */
		} else if (i == NS_IN_MTIME) {
			if (len - pos < 8) {
				*why = "a field runs past the end of the record";
				return -EUCLEAN;
			}
			f[i] = ld64(rec + pos);
			pos += 8;
		} else {
			bool narrow = i == NS_IN_NLINK || i == NS_IN_UID || i == NS_IN_GID ||
				      i == NS_IN_FLAGS;
			int r = get_varint(rec, len, &pos, narrow ? 32 : 64, &f[i], why);
			if (r < 0)
				return r;
		}
		if (!f[i]) {
			*why = "a field marked present is zero";
			return -EUCLEAN;
		}
	}
	out->mode = ld16(rec);
	out->nlink = (uint32_t)f[NS_IN_NLINK];
	out->uid = (uint32_t)f[NS_IN_UID];
	out->gid = (uint32_t)f[NS_IN_GID];
	out->size = f[NS_IN_SIZE];
	out->mtime = (int64_t)f[NS_IN_MTIME];
	out->atime = (int64_t)(f[NS_IN_MTIME] + unzigzag(f[NS_IN_ATIME]));
	out->ctime = (int64_t)(f[NS_IN_MTIME] + unzigzag(f[NS_IN_CTIME]));
	out->gen = f[NS_IN_GEN];
	out->rdev = f[NS_IN_RDEV];
	out->blocks = f[NS_IN_BLOCKS];
	out->parent = f[NS_IN_PARENT];
	out->flags = (uint32_t)f[NS_IN_FLAGS];
	return (int)pos;
}

int ns_inode_decode(const uint8_t *rec, size_t len, struct ns_inode *out, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (len < 3) {
		*why = "shorter than 3 bytes";
		return -EUCLEAN;
	}
	if (rec[2] == NS_INODE_V2)
		return decode_v2(rec, len, out, why);
	if (rec[2] != 0 || (len >= 4 && rec[3] != 0)) {
		*why = "neither a v1 header (bytes 2-3 zero) nor v2 (byte 2 = 2)";
		return -EUCLEAN;
	}
	if (len < NS_INODE_V1_HDR) {
		*why = "a v1 header shorter than 88 bytes";
		return -EUCLEAN;
	}
	out->mode = ld32(rec + V1_MODE);
	out->nlink = ld32(rec + V1_NLINK);
	out->uid = ld32(rec + V1_UID);
	out->gid = ld32(rec + V1_GID);
	out->size = ld64(rec + V1_SIZE);
	out->atime = (int64_t)ld64(rec + V1_ATIME);
	out->mtime = (int64_t)ld64(rec + V1_MTIME);
	out->ctime = (int64_t)ld64(rec + V1_CTIME);
	out->gen = ld64(rec + V1_GEN);
	out->rdev = ld64(rec + V1_RDEV);
	out->blocks = ld64(rec + V1_BLOCKS);
	out->parent = ld64(rec + V1_PARENT);
	out->flags = ld32(rec + V1_FLAGS);
	return NS_INODE_V1_HDR;
}

/*
 * store/meta.c — encoding and checking of META PAGEs and TREE RECORDs (man/kvfs.5).
 *
 * A meta page is valid when its magic, version, page size and checksum hold and its fields are
 * plausible (page_count >= 2, roots inside page_count, a depth for every non-empty tree, the
 * deferred run inside page_count).  Choosing between the two slots is txn.c's job; this file
 * only says whether one slot is valid and why not.
 */
#include <errno.h>
#include <string.h>

#include "store/checksum.h"
#include "store/store_int.h"

void trec_encode(const struct tree_rec *r, uint8_t *p)
{
	st64(p + TREC_ROOT_PGNO, r->root);
	st64(p + TREC_ROOT_TXNID, r->root_txnid);
	st32(p + TREC_DEPTH, r->depth);
	st32(p + TREC_FLAGS, r->flags);
	st64(p + TREC_ENTRIES, r->entries);
	st64(p + TREC_PAGES, r->pages);
}

void trec_decode(const uint8_t *p, struct tree_rec *r)
{
	r->root = ld64(p + TREC_ROOT_PGNO);
	r->root_txnid = ld64(p + TREC_ROOT_TXNID);
	r->depth = ld32(p + TREC_DEPTH);
	r->flags = ld32(p + TREC_FLAGS);
	r->entries = ld64(p + TREC_ENTRIES);
	r->pages = ld64(p + TREC_PAGES);
}

void meta_encode(const struct meta *m, unsigned slot, uint8_t *page)
{
	memset(page, 0, STORE_PAGE_SIZE);
	memcpy(page + META_MAGIC, STORE_MAGIC, 8);
	st32(page + META_VERSION, STORE_FORMAT_VERSION);
	st32(page + META_PAGE_SIZE, STORE_PAGE_SIZE);
	st64(page + META_TXNID, m->txnid);
	st64(page + META_PAGE_COUNT, m->page_count);
	st64(page + META_LSN, m->lsn);
	trec_encode(&m->catalog, page + META_CATALOG);
	trec_encode(&m->freedb, page + META_FREEDB);
	st64(page + META_FREE_PAGES, m->free_pages);
	st32(page + META_DEFERRED_RUNS, m->n_deferred);
	for (uint32_t i = 0; i < m->n_deferred; i++) {
		st64(page + META_DEFERRED + 12 * i, m->deferred[i].pgno);
		st32(page + META_DEFERRED + 12 * i + 8, (uint32_t)m->deferred[i].count);
	}
	st64(page + META_CHECKSUM, checksum64(page + 8, STORE_PAGE_SIZE - 8, slot));
}

static bool trec_ok(const struct tree_rec *r, uint64_t page_count)
{
	if (r->root == 0)
		return r->depth == 0 && r->entries == 0;
	return r->root >= FIRST_DATA_PGNO && r->root < page_count && r->depth >= 1 &&
	       r->depth <= 64 && r->flags == 0;
}

int meta_decode(const uint8_t *page, unsigned slot, struct meta *m, const char **why)
{
	if (memcmp(page + META_MAGIC, STORE_MAGIC, 8) != 0) {
		*why = "bad magic (not a kvfs data file)";
		return -EINVAL;
	}
	if (ld64(page + META_CHECKSUM) != checksum64(page + 8, STORE_PAGE_SIZE - 8, slot)) {
		*why = "meta page checksum mismatch";
		return -EUCLEAN;
	}
	uint32_t version = ld32(page + META_VERSION);
	if (version < STORE_FORMAT_VERSION_MIN || version > STORE_FORMAT_VERSION) {
		*why = "unknown format version";
		return -EPROTONOSUPPORT;
	}
	if (ld32(page + META_PAGE_SIZE) != STORE_PAGE_SIZE) {
		*why = "unsupported page size";
		return -EPROTONOSUPPORT;
	}
	m->txnid = ld64(page + META_TXNID);
	m->page_count = ld64(page + META_PAGE_COUNT);
	m->lsn = ld64(page + META_LSN);
	trec_decode(page + META_CATALOG, &m->catalog);
	trec_decode(page + META_FREEDB, &m->freedb);
	m->free_pages = ld64(page + META_FREE_PAGES);
	m->n_deferred = ld32(page + META_DEFERRED_RUNS);
	if (m->n_deferred > META_DEFERRED_MAX || ld32(page + META_DEFERRED_RUNS + 4)) {
		*why = "deferred run count out of range";
		return -EUCLEAN;
	}
	for (uint32_t i = 0; i < m->n_deferred; i++) {
		m->deferred[i].pgno = ld64(page + META_DEFERRED + 12 * i);
		m->deferred[i].count = ld32(page + META_DEFERRED + 12 * i + 8);
	}
	for (size_t i = META_DEFERRED + 12 * m->n_deferred; i < STORE_PAGE_SIZE; i++) {
		if (page[i]) {
			*why = "reserved bytes not zero";
			return -EUCLEAN;
		}
	}
	if (m->page_count < FIRST_DATA_PGNO || m->page_count > (1ull << 40)) {
		*why = "page_count out of range";
		return -EUCLEAN;
	}
	if (!trec_ok(&m->catalog, m->page_count) || !trec_ok(&m->freedb, m->page_count)) {
		*why = "tree record out of range";
		return -EUCLEAN;
	}
	if (m->free_pages > m->page_count) {
		*why = "free_pages out of range";
		return -EUCLEAN;
	}
	for (uint32_t i = 0; i < m->n_deferred; i++) {
		if (m->deferred[i].count == 0 || m->deferred[i].pgno < FIRST_DATA_PGNO ||
		    m->deferred[i].pgno >= m->page_count ||
		    m->deferred[i].count > m->page_count - m->deferred[i].pgno) {
			*why = "deferred run out of range";
			return -EUCLEAN;
		}
	}
	return 0;
}

void meta_to_words(const struct meta *m, uint64_t w[META_WORDS])
{
	const struct tree_rec *r[2] = { &m->catalog, &m->freedb };
	w[0] = m->txnid;
	w[1] = m->page_count;
	w[2] = m->lsn;
	for (int i = 0; i < 2; i++) {
		w[3 + i * 5] = r[i]->root;
		w[4 + i * 5] = r[i]->root_txnid;
		w[5 + i * 5] = (uint64_t)r[i]->depth << 32 | r[i]->flags;
		w[6 + i * 5] = r[i]->entries;
		w[7 + i * 5] = r[i]->pages;
	}
	w[13] = m->free_pages | (uint64_t)m->n_deferred << 56;
	for (int i = 0; i < META_DEFERRED_MAX; i++) {
		w[14 + 2 * i] = m->deferred[i].pgno;
		w[15 + 2 * i] = m->deferred[i].count;
	}
}

void meta_from_words(const uint64_t w[META_WORDS], struct meta *m)
{
	struct tree_rec *r[2] = { &m->catalog, &m->freedb };
	m->txnid = w[0];
	m->page_count = w[1];
	m->lsn = w[2];
	for (int i = 0; i < 2; i++) {
		r[i]->root = w[3 + i * 5];
		r[i]->root_txnid = w[4 + i * 5];
		r[i]->depth = (uint32_t)(w[5 + i * 5] >> 32);
		r[i]->flags = (uint32_t)w[5 + i * 5];
		r[i]->entries = w[6 + i * 5];
		r[i]->pages = w[7 + i * 5];
	}
	m->free_pages = w[13] & ((1ull << 56) - 1);
	m->n_deferred = (uint32_t)(w[13] >> 56);
	for (int i = 0; i < META_DEFERRED_MAX; i++) {
		m->deferred[i].pgno = w[14 + 2 * i];
		m->deferred[i].count = w[15 + 2 * i];
	}
}

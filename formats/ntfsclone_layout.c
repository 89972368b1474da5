/*
 * formats/ntfsclone_layout.c - the decoding of one record of an ntfsclone
 * command stream and the text of a bad one (ntfsclone_layout.h), shared by
 * the walk (ntfsclone.c) and the run index (ntfsclone_access.c) so the
 * rules exist once. No I/O, no state.
 */
#include <stdio.h>

#include "ntfsclone_layout.h"

void nc_decode_record(const struct nc_layout *l, uint64_t pos, const uint8_t *p, size_t avail,
		      struct nc_record *r)
{
	*r = (struct nc_record){ .kind = NC_REC_BAD_COMMAND };
	if (p[0] == CMD_NEXT) {
		/* pos < end_pos <= nr_clusters + 1, so the record starts inside the
		 * device; only the backup boot sector's can be short (or empty when
		 * the device ends with the volume). */
		r->kind = NC_REC_NEXT;
		r->len = nc_record_len(l, pos);
		r->size = 1 + (size_t)r->len;
		return;
	}
	if (p[0] != CMD_GAP)
		return;
	if (avail < GAP_RECORD) {
		r->kind = NC_REC_SHORT;
		r->need = GAP_RECORD;
		return;
	}
	int64_t to;
	r->count = (int64_t)get_le64(p + 1);
	r->size = GAP_RECORD;
	if (r->count == 0)
		r->kind = NC_REC_GAP_ZERO;
	else if (__builtin_add_overflow((int64_t)pos, r->count, &to) || to < 0 ||
		 (uint64_t)to > l->nr_clusters)
		r->kind = NC_REC_GAP_OUTSIDE;
	else {
		r->kind = NC_REC_GAP;
		r->to = (uint64_t)to;
	}
}

const char *nc_bad_record_text(char *out, size_t outsz, const struct nc_layout *l, uint64_t pos,
			       uint8_t cmd, const struct nc_record *r)
{
	if (r->kind == NC_REC_GAP_ZERO)
		snprintf(out, outsz, "GAP record of 0 clusters");
	else if (r->kind == NC_REC_GAP_OUTSIDE)
		snprintf(out, outsz, "GAP of %lld clusters from cluster position %llu leaves the volume "
			 "(%llu clusters)", (long long)r->count, (unsigned long long)pos,
			 (unsigned long long)l->nr_clusters);
	else
		snprintf(out, outsz, "invalid command byte 0x%02x", cmd);
	return out;
}

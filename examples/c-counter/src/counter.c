/*
 * counter.c — a raftkv plugin in freestanding C: named 64-bit counters.
 *
 * Written against abi/ABI.md (ABI v1) alone: no libc, no SDK. It exports the
 * version marker, raftkv_alloc, raftkv_apply, raftkv_query and raftkv_info,
 * imports the raftkv host functions it uses, and reads and writes MsgPack
 * with the small reader and writer below.
 *
 * Protocol (commands and queries are MsgPack maps with string field names,
 * which is what the HTTP API and the CLI make of a JSON object; results are
 * MsgPack maps):
 *
 *   command {"op":"incr","name":N[,"by":D][,"expect":E]}
 *       adds D (a signed 64-bit integer, default 1) to counter N, which starts
 *       at 0. With "expect", only if the counter's current value is E.
 *       -> {"name":N,"value":V,"version":I}   (I: the entry's log index)
 *   command {"op":"reset","name":N}
 *       deletes counter N. -> {"name":N,"existed":bool}
 *   command {"op":"trap","name":N}
 *       increments N, then executes `unreachable`: a demonstration that a
 *       trapping command changes nothing (the host reports code 6, trap).
 *   query   {"op":"get","name":N}
 *       -> {"name":N,"value":V,"version":I}   (I: the index that last wrote it)
 *   query   {"op":"list"[,"prefix":P]}
 *       -> {"counters":{N:V,...}} for every counter whose name starts with P,
 *          in name order.
 *
 * A name is 1 to 255 bytes (str or bin). Errors (result code, UTF-8 message):
 *   1 bad_request  malformed MsgPack, not a map, unknown op, bad field
 *   2 not_found    get of a counter that does not exist
 *   3 conflict     incr with "expect" that does not match
 *   5 internal     a host function failed, or a stored value is not 8 bytes
 *   64 overflow    the increment would overflow a signed 64-bit integer
 *
 * State: key "c/" + name, value the counter as 8 bytes, little-endian two's
 * complement.
 *
 * Memory: one bump allocator over the linear memory after __heap_base, which
 * grows it with memory.grow. Buffers (input, output, scan) only ever grow, by
 * doubling, so their total stays within twice the largest request.
 *
 * Build: ../build.sh (clang --target=wasm32 -nostdlib, linked by wasm-ld).
 */

typedef unsigned char u8;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;
typedef __SIZE_TYPE__ size_t;

#define IMPORT(n) __attribute__((import_module("raftkv"), import_name(n)))
#define EXPORT(n) __attribute__((export_name(n)))

/* ---- host functions (ABI section 2) ---------------------------------- */

IMPORT("state_get") i64 state_get(const u8 *k, u32 klen, u8 *v, u32 vcap, u64 *ver);
IMPORT("state_set") i32 state_set(const u8 *k, u32 klen, const u8 *v, u32 vlen);
IMPORT("state_delete") i32 state_delete(const u8 *k, u32 klen);
IMPORT("state_scan") i64 state_scan(const u8 *s, u32 slen, const u8 *e, u32 elen, u32 limit, u8 *buf, u32 cap);
IMPORT("result") void result(u32 code, const u8 *p, u32 len);

/* Result codes (ABI section 4) and this plugin's own. */
enum {
	OK = 0,
	BAD_REQUEST = 1,
	NOT_FOUND = 2,
	CONFLICT = 3,
	INTERNAL = 5,
	OVERFLOW = 64,
};

/* ---- memory ------------------------------------------------------------ */

/* clang may emit calls to these for aggregate copies; there is no libc. */
void *memcpy(void *dst, const void *src, size_t n) {
	u8 *d = dst;
	const u8 *s = src;
	while (n--) *d++ = *s++;
	return dst;
}

void *memset(void *dst, int c, size_t n) {
	u8 *d = dst;
	while (n--) *d++ = (u8)c;
	return dst;
}

static int mem_eq(const u8 *a, const u8 *b, u32 n) {
	for (u32 i = 0; i < n; i++)
		if (a[i] != b[i]) return 0;
	return 1;
}

extern u8 __heap_base; /* defined by wasm-ld: the first byte after data and stack */
static u32 heap_top;

/* bump returns n fresh bytes, 8-byte aligned, growing the memory as needed. An
 * allocation the memory cap refuses traps, as the ABI expects. */
static u8 *bump(u32 n) {
	if (heap_top == 0) heap_top = (u32)(size_t)&__heap_base;
	u32 p = (heap_top + 7u) & ~7u;
	if (n > 0xFFFFFFFFu - p) __builtin_trap();
	u32 end = p + n;
	u32 have = (u32)__builtin_wasm_memory_size(0) * 65536u;
	if (end > have) {
		u32 pages = (end - have + 65535u) / 65536u;
		if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) __builtin_trap();
	}
	heap_top = end;
	return (u8 *)(size_t)p;
}

/* buf is a byte buffer that grows by doubling. */
typedef struct {
	u8 *p;
	u32 len, cap;
} buf;

static void reserve(buf *b, u32 n) {
	if (b->cap - b->len >= n) return;
	u32 cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > 0x7FFFFFFFu) __builtin_trap();
		cap *= 2;
	}
	u8 *p = bump(cap);
	if (b->len) memcpy(p, b->p, b->len);
	b->p = p;
	b->cap = cap;
}

static buf in;   /* raftkv_alloc's buffer: the input of the next call */
static buf out;  /* the payload of the next result */
static buf scan; /* state_scan answers */

/* ---- MsgPack writer ---------------------------------------------------- */

static void put(buf *b, const void *p, u32 n) {
	reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_byte(buf *b, u8 c) { put(b, &c, 1); }

static void put_be(buf *b, u64 v, int n) {
	u8 t[8];
	for (int i = n - 1; i >= 0; i--, v >>= 8) t[i] = (u8)v;
	put(b, t, (u32)n);
}

static void w_map(buf *b, u32 n) {
	if (n < 16) put_byte(b, (u8)(0x80 | n));
	else if (n < 0x10000) { put_byte(b, 0xde); put_be(b, n, 2); }
	else { put_byte(b, 0xdf); put_be(b, n, 4); }
}

static void w_str(buf *b, const u8 *s, u32 n) {
	if (n < 32) put_byte(b, (u8)(0xa0 | n));
	else if (n < 0x100) { put_byte(b, 0xd9); put_be(b, n, 1); }
	else if (n < 0x10000) { put_byte(b, 0xda); put_be(b, n, 2); }
	else { put_byte(b, 0xdb); put_be(b, n, 4); }
	put(b, s, n);
}

static u32 cstrlen(const char *s) {
	u32 n = 0;
	while (s[n]) n++;
	return n;
}

static void w_cstr(buf *b, const char *s) { w_str(b, (const u8 *)s, cstrlen(s)); }

static void w_uint(buf *b, u64 v) {
	if (v < 0x80) put_byte(b, (u8)v);
	else if (v < 0x100) { put_byte(b, 0xcc); put_be(b, v, 1); }
	else if (v < 0x10000) { put_byte(b, 0xcd); put_be(b, v, 2); }
	else if (v < 0x100000000ull) { put_byte(b, 0xce); put_be(b, v, 4); }
	else { put_byte(b, 0xcf); put_be(b, v, 8); }
}

/* w_int writes the shortest encoding: non-negative values as unsigned. */
static void w_int(buf *b, i64 v) {
	if (v >= 0) w_uint(b, (u64)v);
	else if (v >= -32) put_byte(b, (u8)v);
	else if (v >= -128) { put_byte(b, 0xd0); put_be(b, (u64)v, 1); }
	else if (v >= -32768) { put_byte(b, 0xd1); put_be(b, (u64)v, 2); }
	else if (v >= -2147483648ll) { put_byte(b, 0xd2); put_be(b, (u64)v, 4); }
	else { put_byte(b, 0xd3); put_be(b, (u64)v, 8); }
}

static void w_bool(buf *b, int v) { put_byte(b, v ? 0xc3 : 0xc2); }

/* ---- MsgPack reader ---------------------------------------------------- */

typedef struct {
	const u8 *p, *end;
} rd;

static u32 left(const rd *r) { return (u32)(r->end - r->p); }

/* be reads an n-byte big-endian number; 0 if the data is too short. */
static int be(rd *r, int n, u64 *v) {
	if (left(r) < (u32)n) return 0;
	u64 x = 0;
	for (int i = 0; i < n; i++) x = x << 8 | *r->p++;
	*v = x;
	return 1;
}

/* container reads an array (want 0x90) or map (want 0x80) header. */
static int container(rd *r, u8 fix, u8 c16, u32 *n) {
	if (r->p >= r->end) return 0;
	u8 c = *r->p;
	u64 v;
	if ((c & 0xf0) == fix) { r->p++; *n = c & 0x0f; return 1; }
	if (c == c16) { r->p++; if (!be(r, 2, &v)) return 0; *n = (u32)v; return 1; }
	if (c == c16 + 1) { r->p++; if (!be(r, 4, &v)) return 0; *n = (u32)v; return 1; }
	return 0;
}

static int read_array(rd *r, u32 *n) { return container(r, 0x90, 0xdc, n); }
static int read_map(rd *r, u32 *n) { return container(r, 0x80, 0xde, n); }

/* read_int reads any integer encoding. *neg is set for negative values, which
 * are returned in *v as two's complement. */
static int read_int(rd *r, u64 *v, int *neg) {
	if (r->p >= r->end) return 0;
	u8 c = *r->p++;
	*neg = 0;
	if (c <= 0x7f) { *v = c; return 1; }
	if (c >= 0xe0) { *v = (u64)(i64)(signed char)c; *neg = 1; return 1; }
	if (c >= 0xcc && c <= 0xcf) return be(r, 1 << (c - 0xcc), v);
	if (c >= 0xd0 && c <= 0xd3) {
		int n = 1 << (c - 0xd0);
		u64 x;
		if (!be(r, n, &x)) return 0;
		if (n < 8 && (x >> (8 * n - 1)) & 1) x |= ~0ull << (8 * n); /* sign-extend */
		*v = x;
		*neg = (i64)x < 0;
		return 1;
	}
	return 0;
}

static int read_uint(rd *r, u64 *v) {
	int neg;
	return read_int(r, v, &neg) && !neg;
}

static int read_i64(rd *r, i64 *v) {
	u64 x;
	int neg;
	if (!read_int(r, &x, &neg) || (!neg && x > 0x7FFFFFFFFFFFFFFFull)) return 0;
	*v = (i64)x;
	return 1;
}

/* read_bytes reads a str or bin, pointing *p into the input. */
static int read_bytes(rd *r, const u8 **p, u32 *n) {
	if (r->p >= r->end) return 0;
	u8 c = *r->p;
	u64 len;
	if (c >= 0xa0 && c <= 0xbf) { r->p++; len = c & 0x1f; }
	else if (c == 0xc4 || c == 0xd9) { r->p++; if (!be(r, 1, &len)) return 0; }
	else if (c == 0xc5 || c == 0xda) { r->p++; if (!be(r, 2, &len)) return 0; }
	else if (c == 0xc6 || c == 0xdb) { r->p++; if (!be(r, 4, &len)) return 0; }
	else return 0;
	if (left(r) < len) return 0;
	*p = r->p;
	*n = (u32)len;
	r->p += len;
	return 1;
}

/* skip steps over one value and everything nested in it, without recursion:
 * pending counts the values still to step over. */
static int skip(rd *r) {
	u64 pending = 1, n;
	while (pending) {
		pending--;
		if (r->p >= r->end) return 0;
		u8 c = *r->p++;
		u64 data = 0; /* bytes of payload after the header */
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) continue;
		if (c <= 0x8f) { pending += 2ull * (c & 0x0f); continue; }
		if (c <= 0x9f) { pending += c & 0x0f; continue; }
		if (c <= 0xbf) { data = c & 0x1f; goto payload; }
		switch (c) {
		case 0xc4: case 0xd9: if (!be(r, 1, &data)) return 0; break;
		case 0xc5: case 0xda: if (!be(r, 2, &data)) return 0; break;
		case 0xc6: case 0xdb: if (!be(r, 4, &data)) return 0; break;
		case 0xc7: if (!be(r, 1, &data)) return 0; data++; break;
		case 0xc8: if (!be(r, 2, &data)) return 0; data++; break;
		case 0xc9: if (!be(r, 4, &data)) return 0; data++; break;
		case 0xca: data = 4; break;
		case 0xcb: data = 8; break;
		case 0xcc: case 0xd0: data = 1; break;
		case 0xcd: case 0xd1: data = 2; break;
		case 0xce: case 0xd2: data = 4; break;
		case 0xcf: case 0xd3: data = 8; break;
		case 0xd4: data = 2; break;
		case 0xd5: data = 3; break;
		case 0xd6: data = 5; break;
		case 0xd7: data = 9; break;
		case 0xd8: data = 17; break;
		case 0xdc: if (!be(r, 2, &n)) return 0; pending += n; break;
		case 0xdd: if (!be(r, 4, &n)) return 0; pending += n; break;
		case 0xde: if (!be(r, 2, &n)) return 0; pending += 2 * n; break;
		case 0xdf: if (!be(r, 4, &n)) return 0; pending += 2 * n; break;
		default: return 0; /* 0xc1 */
		}
	payload:
		if (left(r) < data) return 0;
		r->p += data;
	}
	return 1;
}

/* ---- results and messages ---------------------------------------------- */

static void msg(const char *s) { put(&out, s, cstrlen(s)); }

static void msg_bytes(const u8 *p, u32 n) { put(&out, p, n); }

static void msg_int(i64 v) {
	u8 t[20];
	int i = 20;
	u64 x = v < 0 ? 0 - (u64)v : (u64)v;
	do t[--i] = (u8)('0' + x % 10); while (x /= 10);
	if (v < 0) put_byte(&out, '-');
	put(&out, t + i, (u32)(20 - i));
}

/* fail reports code with the message built in out so far. */
static void fail(u32 code) { result(code, out.p, out.len); }

/* fail_msg reports code with a fixed message. */
static void fail_msg(u32 code, const char *m) {
	out.len = 0;
	msg(m);
	fail(code);
}

/* ---- requests ---------------------------------------------------------- */

/* field is the raw MsgPack encoding of a request field; p == 0 if absent. */
typedef struct {
	const u8 *p, *end;
} field;

typedef struct {
	field op, name, by, expect, prefix;
} request;

static int is(const u8 *s, u32 n, const char *lit) { return n == cstrlen(lit) && mem_eq(s, (const u8 *)lit, n); }

/* parse checks that data is one well-formed MsgPack map with string field
 * names and collects its known fields. On failure it reports bad_request
 * (kind is "command" or "query") and returns 0. */
static int parse(const u8 *data, u32 len, const char *kind, request *q) {
	memset(q, 0, sizeof *q);
	rd r = {data, data + len};
	if (!skip(&r) || r.p != r.end) {
		out.len = 0; msg("malformed "); msg(kind); msg(": invalid msgpack");
		fail(BAD_REQUEST);
		return 0;
	}
	r.p = data;
	u32 n;
	if (!read_map(&r, &n)) {
		out.len = 0; msg("malformed "); msg(kind); msg(": expected a map");
		fail(BAD_REQUEST);
		return 0;
	}
	for (u32 i = 0; i < n; i++) {
		const u8 *k;
		u32 klen;
		if (!read_bytes(&r, &k, &klen)) {
			out.len = 0; msg("malformed "); msg(kind); msg(": field names must be strings");
			fail(BAD_REQUEST);
			return 0;
		}
		field f = {r.p, 0};
		skip(&r); /* cannot fail: the whole input was checked */
		f.end = r.p;
		if (is(k, klen, "op")) q->op = f;
		else if (is(k, klen, "name")) q->name = f;
		else if (is(k, klen, "by")) q->by = f;
		else if (is(k, klen, "expect")) q->expect = f;
		else if (is(k, klen, "prefix")) q->prefix = f;
	}
	return 1;
}

static int field_bytes(field f, const u8 **p, u32 *n) {
	rd r = {f.p, f.end};
	return read_bytes(&r, p, n);
}

static int field_i64(field f, i64 *v) {
	rd r = {f.p, f.end};
	return read_i64(&r, v);
}

#define MAX_NAME 255
#define PREFIX "c/"
#define PREFIX_LEN 2

/* key holds "c/" + a name, or a scan cursor (a key + one 0 byte). */
static u8 key[PREFIX_LEN + MAX_NAME + 1];
static u32 keylen;

/* name_field reads the name into key; it reports bad_request and returns 0 if
 * the name is missing or invalid. */
static int name_field(const request *q, const u8 **name, u32 *n) {
	if (!q->name.p) { fail_msg(BAD_REQUEST, "missing name"); return 0; }
	if (!field_bytes(q->name, name, n)) { fail_msg(BAD_REQUEST, "name must be a string"); return 0; }
	if (*n == 0 || *n > MAX_NAME) { fail_msg(BAD_REQUEST, "name must be 1 to 255 bytes"); return 0; }
	memcpy(key, PREFIX, PREFIX_LEN);
	memcpy(key + PREFIX_LEN, *name, *n);
	keylen = PREFIX_LEN + *n;
	return 1;
}

/* load reads the counter in key: 1 with *v and *ver if it exists, 0 if not,
 * -1 after reporting an internal error. */
static int load(const u8 *name, u32 nlen, i64 *v, u64 *ver) {
	u8 val[8];
	u64 version = 0;
	i64 n = state_get(key, keylen, val, sizeof val, &version);
	if (n == -1) { *v = 0; *ver = 0; return 0; }
	if (n != 8) {
		out.len = 0;
		if (n < 0) { msg("state_get failed with "); msg_int(n); }
		else { msg("counter "); msg_bytes(name, nlen); msg(" holds "); msg_int(n); msg(" bytes, not 8"); }
		fail(INTERNAL);
		return -1;
	}
	u64 x = 0;
	for (int i = 7; i >= 0; i--) x = x << 8 | val[i];
	*v = (i64)x;
	*ver = version;
	return 1;
}

/* answer reports {"name":N,"value":V,"version":I}. */
static void answer(const u8 *name, u32 nlen, i64 v, u64 version) {
	out.len = 0;
	w_map(&out, 3);
	w_cstr(&out, "name"); w_str(&out, name, nlen);
	w_cstr(&out, "value"); w_int(&out, v);
	w_cstr(&out, "version"); w_uint(&out, version);
	result(OK, out.p, out.len);
}

static void host_failed(const char *fn, i32 rc) {
	out.len = 0;
	msg(fn); msg(" failed with "); msg_int(rc);
	fail(INTERNAL);
}

/* incr runs "incr" (and "trap", which traps after the write). */
static void incr(const request *q, u64 index, int trap) {
	const u8 *name;
	u32 nlen;
	if (!name_field(q, &name, &nlen)) return;
	i64 by = 1, expect = 0, cur, next;
	if (q->by.p && !field_i64(q->by, &by)) { fail_msg(BAD_REQUEST, "by must be a signed 64-bit integer"); return; }
	if (q->expect.p && !field_i64(q->expect, &expect)) { fail_msg(BAD_REQUEST, "expect must be a signed 64-bit integer"); return; }
	u64 ver;
	if (load(name, nlen, &cur, &ver) < 0) return;
	if (q->expect.p && cur != expect) {
		out.len = 0;
		msg("counter "); msg_bytes(name, nlen); msg(" is "); msg_int(cur); msg(", expected "); msg_int(expect);
		fail(CONFLICT);
		return;
	}
	if (__builtin_add_overflow(cur, by, &next)) {
		out.len = 0;
		msg("overflow: counter "); msg_bytes(name, nlen); msg(" is "); msg_int(cur); msg(", adding "); msg_int(by);
		msg(" leaves the signed 64-bit range");
		fail(OVERFLOW);
		return;
	}
	u8 val[8];
	for (int i = 0; i < 8; i++) val[i] = (u8)((u64)next >> (8 * i));
	i32 rc = state_set(key, keylen, val, sizeof val);
	if (rc != 0) { host_failed("state_set", rc); return; }
	if (trap) __builtin_trap();
	answer(name, nlen, next, index);
}

static void reset(const request *q) {
	const u8 *name;
	u32 nlen;
	if (!name_field(q, &name, &nlen)) return;
	i32 rc = state_delete(key, keylen);
	if (rc < 0) { host_failed("state_delete", rc); return; }
	out.len = 0;
	w_map(&out, 2);
	w_cstr(&out, "name"); w_str(&out, name, nlen);
	w_cstr(&out, "existed"); w_bool(&out, rc == 1);
	result(OK, out.p, out.len);
}

static void get(const request *q) {
	const u8 *name;
	u32 nlen;
	if (!name_field(q, &name, &nlen)) return;
	i64 v;
	u64 ver;
	int found = load(name, nlen, &v, &ver);
	if (found < 0) return;
	if (!found) {
		out.len = 0;
		msg("counter "); msg_bytes(name, nlen); msg(" not found");
		fail(NOT_FOUND);
		return;
	}
	answer(name, nlen, v, ver);
}

#define SCAN_LIMIT 1000

/* list answers {"counters":{name:value,...}}, scanning in pages. The map's
 * size is only known at the end, so its header is a map32 patched then. */
static void list(const request *q) {
	const u8 *prefix = 0;
	u32 plen = 0;
	if (q->prefix.p && (!field_bytes(q->prefix, &prefix, &plen) || plen > MAX_NAME)) {
		fail_msg(BAD_REQUEST, "prefix must be a string of at most 255 bytes");
		return;
	}
	/* end: "c/" + prefix with its last non-0xff byte incremented. */
	u8 end[PREFIX_LEN + MAX_NAME];
	memcpy(end, PREFIX, PREFIX_LEN);
	if (plen) memcpy(end + PREFIX_LEN, prefix, plen);
	u32 elen = PREFIX_LEN + plen;
	while (end[elen - 1] == 0xff) elen--; /* "c/" itself ends in '/' */
	end[elen - 1]++;
	memcpy(key, PREFIX, PREFIX_LEN);
	if (plen) memcpy(key + PREFIX_LEN, prefix, plen);
	keylen = PREFIX_LEN + plen;

	out.len = 0;
	w_map(&out, 1);
	w_cstr(&out, "counters");
	u32 head = out.len;
	put_byte(&out, 0xdf);
	put_be(&out, 0, 4);
	u32 count = 0;
	for (;;) {
		i64 n = state_scan(key, keylen, end, elen, SCAN_LIMIT, scan.p, scan.cap);
		if (n < 0) { host_failed("state_scan", (i32)n); return; }
		if ((u64)n > scan.cap) {
			scan.len = 0;
			reserve(&scan, (u32)n);
			continue; /* the same scan again, with room for the answer */
		}
		rd r = {scan.p, scan.p + n};
		u32 recs;
		if (!read_array(&r, &recs)) { fail_msg(INTERNAL, "state_scan returned a malformed answer"); return; }
		const u8 *last = 0;
		u32 lastlen = 0;
		for (u32 i = 0; i < recs; i++) {
			u32 fields, klen, vlen;
			const u8 *k, *v;
			u64 ver;
			if (!read_array(&r, &fields) || fields < 3 || !read_bytes(&r, &k, &klen) || !read_bytes(&r, &v, &vlen) ||
			    !read_uint(&r, &ver) || klen < PREFIX_LEN) {
				fail_msg(INTERNAL, "state_scan returned a malformed record");
				return;
			}
			for (u32 extra = 3; extra < fields; extra++) skip(&r);
			if (vlen != 8) {
				out.len = 0;
				msg("counter "); msg_bytes(k + PREFIX_LEN, klen - PREFIX_LEN); msg(" holds "); msg_int(vlen); msg(" bytes, not 8");
				fail(INTERNAL);
				return;
			}
			u64 x = 0;
			for (int j = 7; j >= 0; j--) x = x << 8 | v[j];
			w_str(&out, k + PREFIX_LEN, klen - PREFIX_LEN);
			w_int(&out, (i64)x);
			count++;
			last = k;
			lastlen = klen;
		}
		if (recs < SCAN_LIMIT) break;
		if (lastlen + 1 > sizeof key) { fail_msg(INTERNAL, "key too long"); return; }
		memcpy(key, last, lastlen); /* continue after the last key: key + 0x00 */
		key[lastlen] = 0;
		keylen = lastlen + 1;
	}
	for (int i = 0; i < 4; i++) out.p[head + 1 + i] = (u8)(count >> (24 - 8 * i));
	result(OK, out.p, out.len);
}

static int op_is(const request *q, const char *name) {
	const u8 *op;
	u32 n;
	return field_bytes(q->op, &op, &n) && is(op, n, name);
}

/* op_ok reports bad_request and returns 0 if the op is missing or not a string. */
static int op_ok(const request *q) {
	const u8 *op;
	u32 n;
	if (!q->op.p) { fail_msg(BAD_REQUEST, "missing op"); return 0; }
	if (!field_bytes(q->op, &op, &n)) { fail_msg(BAD_REQUEST, "op must be a string"); return 0; }
	return 1;
}

static void unknown_op(const request *q, const char *what) {
	const u8 *op;
	u32 n;
	field_bytes(q->op, &op, &n);
	out.len = 0;
	msg("unknown "); msg(what); msg(" op \"");
	msg_bytes(op, n > 64 ? 64 : n);
	msg("\"");
	fail(BAD_REQUEST);
}

/* ---- exports (ABI section 1) -------------------------------------------- */

EXPORT("raftkv_abi_v1") void raftkv_abi_v1(void) {}

EXPORT("raftkv_alloc") u8 *raftkv_alloc(u32 size) {
	in.len = 0;
	reserve(&in, size ? size : 1);
	return in.p;
}

/* command runs one entry's command and reports its result. */
static void command(const u8 *data, u32 len, u64 index) {
	request q;
	if (!parse(data, len, "command", &q) || !op_ok(&q)) return;
	if (op_is(&q, "incr")) incr(&q, index, 0);
	else if (op_is(&q, "reset")) reset(&q);
	else if (op_is(&q, "trap")) incr(&q, index, 1);
	else unknown_op(&q, "command");
}

/* raftkv_apply: the Batch is an array of entries [index, term, time, data].
 * Each entry gets exactly one result. A batch that is not well-formed is a
 * host bug; the plugin traps rather than guess. */
EXPORT("raftkv_apply") void raftkv_apply(const u8 *ptr, u32 len) {
	rd r = {ptr, ptr + len};
	u32 n;
	if (!read_array(&r, &n)) __builtin_trap();
	for (u32 i = 0; i < n; i++) {
		u32 fields, dlen;
		u64 index, term;
		i64 time;
		const u8 *data;
		if (!read_array(&r, &fields) || fields < 4 || !read_uint(&r, &index) || !read_uint(&r, &term) ||
		    !read_i64(&r, &time) || !read_bytes(&r, &data, &dlen))
			__builtin_trap();
		for (u32 extra = 4; extra < fields; extra++)
			if (!skip(&r)) __builtin_trap();
		command(data, dlen, index);
	}
}

EXPORT("raftkv_query") void raftkv_query(const u8 *ptr, u32 len) {
	request q;
	if (!parse(ptr, len, "query", &q) || !op_ok(&q)) return;
	if (op_is(&q, "get")) get(&q);
	else if (op_is(&q, "list")) list(&q);
	else unknown_op(&q, "query");
}

EXPORT("raftkv_info") void raftkv_info(void) {
	out.len = 0;
	w_map(&out, 3);
	w_cstr(&out, "name"); w_cstr(&out, "counter");
	w_cstr(&out, "version"); w_cstr(&out, "1.0.0");
	w_cstr(&out, "description"); w_cstr(&out, "named 64-bit counters, in freestanding C against ABI v1");
	result(OK, out.p, out.len);
}

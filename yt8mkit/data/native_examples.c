/* The loops of ingest, in C: the chain of TFRecord lengths through a file, the CRCs
 * of its records, the Features map of each tf.train.Example scanned and checked as a
 * video-level record (examine), packed int64 lists, and the copy, check and cast of
 * feature rows.
 *
 * Why C: the walks are chains (each length says where the next field starts), so
 * numpy can only step every record in lockstep, a dozen array operations a step, and
 * Python one record at a time; and with two decoding threads, every array operation
 * that holds the GIL is time the other thread may wait. Here each is one loop with
 * the GIL released.
 *
 * Semantics are those of fastparse.scan_examples (see its docstring) and of the numpy
 * checks of shard._check_records_numpy, which stay as the fallback and the tests'
 * reference: a record is "plain" only when its every byte was checked to have the one
 * layout TensorFlow writes; any other record is left to the general decoder. Every
 * read is bounded by the record's end (a field running past it makes the record not
 * plain), so no input can make this read outside the buffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TAG_1 0x0A /* field 1, length-delimited */
#define TAG_2 0x12 /* field 2, length-delimited */
#define BYTES_LIST 0x0A
#define FLOAT_LIST 0x12
#define INT64_LIST 0x1A
#define MAX_KEYS 16
#define PREFETCH_BYTES (16 << 10)

/* A varint of at most 3 bytes (lengths below 2^21) at pos, all of it before end. */
static int varint3(const uint8_t *b, int64_t pos, int64_t end, int64_t *value, int64_t *size)
{
    if (pos >= end)
        return 0;
    const uint8_t b0 = b[pos];
    if (b0 < 0x80) {
        *value = b0, *size = 1;
        return 1;
    }
    if (pos + 1 >= end)
        return 0;
    const uint8_t b1 = b[pos + 1];
    if (b1 < 0x80) {
        *value = (b0 & 0x7F) | ((int64_t)b1 << 7), *size = 2;
        return 1;
    }
    if (pos + 2 >= end)
        return 0;
    const uint8_t b2 = b[pos + 2];
    if (b2 >= 0x80)
        return 0;
    *value = (b0 & 0x7F) | ((int64_t)(b1 & 0x7F) << 7) | ((int64_t)b2 << 14), *size = 3;
    return 1;
}

typedef struct {
    int count;
    const uint8_t *key[MAX_KEYS];
    int64_t length[MAX_KEYS];
} Keys;

/* One map entry buf[es:ee): {1: key, 2: Feature {kind: list {} or {1: payload}}}.
 * Returns the key's index, or -1 when the entry is not of the plain layout or its
 * key is unknown; sets the Feature's list kind and its payload's span. */
static int entry(const uint8_t *b, int64_t es, int64_t ee, const Keys *keys, int64_t *kind,
                 int64_t *pstart, int64_t *plen)
{
    if (ee - es < 3 || b[es] != TAG_1)
        return -1;
    const int64_t klen = b[es + 1];
    const int64_t kend = es + 2 + klen;
    if (klen >= 0x80 || kend >= ee || b[kend] != TAG_2)
        return -1;
    int64_t vlen, lsize;
    if (!varint3(b, kend + 1, ee, &vlen, &lsize))
        return -1;
    const int64_t vstart = kend + 1 + lsize;
    if (vstart + vlen != ee || vlen < 2)
        return -1;
    *kind = b[vstart];
    int64_t llen;
    if (!varint3(b, vstart + 1, ee, &llen, &lsize))
        return -1;
    const int64_t lstart = vstart + 1 + lsize;
    if (lstart + llen != ee)
        return -1;
    if (*kind != BYTES_LIST && *kind != FLOAT_LIST && *kind != INT64_LIST)
        return -1;
    if (llen == 0) {
        /* An empty bytes list is not "one id": the general decoder judges it. */
        if (*kind == BYTES_LIST)
            return -1;
        *pstart = ee, *plen = 0;
    } else {
        if (b[lstart] != TAG_1 || !varint3(b, lstart + 1, ee, plen, &lsize))
            return -1;
        *pstart = lstart + 1 + lsize;
        if (*pstart + *plen != ee)
            return -1;
    }
    if (*kind == FLOAT_LIST && *plen % 4 != 0)
        return -1;
    for (int q = 0; q < keys->count; q++)
        if (keys->length[q] == klen && memcmp(b + es + 2, keys->key[q], (size_t)klen) == 0)
            return q;
    return -1;
}

/* Record buf[s:e): whether plain (as fastparse.scan_examples decides it); sets
 * kind/start/length[q] for each key q present (the caller zero-fills them). */
static int record(const uint8_t *b, int64_t s, int64_t e, const Keys *keys, int64_t *kind,
                  int64_t *start, int64_t *length)
{
    /* Example: field 1 (the Features) over the whole record, or followed by 12 00. */
    int64_t flen, size;
    if (e - s < 2 || b[s] != TAG_1 || !varint3(b, s + 1, e, &flen, &size))
        return 0;
    const int64_t fstart = s + 1 + size, fend = fstart + flen;
    const int64_t tail = e - fend;
    if (!(tail == 0 || (tail == 2 && b[e - 2] == TAG_2 && b[e - 1] == 0)))
        return 0;
    int seen[MAX_KEYS] = {0};
    int entries = 0;
    for (int64_t pos = fstart; pos < fend; entries++) {
        /* More entries than keys: some key repeats or is unknown. */
        if (entries == keys->count || b[pos] != TAG_1)
            return 0;
        int64_t elen;
        if (!varint3(b, pos + 1, fend, &elen, &size))
            return 0;
        const int64_t es = pos + 1 + size, ee = es + elen;
        if (ee > fend)
            return 0;
        int64_t k, ps, pl;
        const int q = entry(b, es, ee, keys, &k, &ps, &pl);
        /* A key seen twice: protobuf keeps the last; the general decoder does that. */
        if (q < 0 || seen[q])
            return 0;
        seen[q] = 1;
        kind[q] = k;
        start[q] = ps;
        length[q] = pl;
        pos = ee;
    }
    return 1;
}

static int check_len(const Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name)
{
    if (buf->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd", name, buf->len,
                     items * itemsize);
        return -1;
    }
    return 0;
}

/* Every record [starts[r], ends[r]) inside the buffer, checked before any is read. */
static int check_spans(const Py_buffer *buf, const int64_t *starts, const int64_t *ends,
                       Py_ssize_t n)
{
    for (Py_ssize_t r = 0; r < n; r++) {
        if (starts[r] < 0 || starts[r] > ends[r] || ends[r] > buf->len) {
            PyErr_Format(PyExc_ValueError, "record %zd [%lld, %lld) is outside the buffer", r,
                         (long long)starts[r], (long long)ends[r]);
            return -1;
        }
    }
    return 0;
}

/* The bytes of a tuple of keys (count already set and checked); -1 on error. */
static int read_keys(PyObject *key_tuple, Keys *keys)
{
    for (int q = 0; q < keys->count; q++) {
        PyObject *key = PyTuple_GET_ITEM(key_tuple, q);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            return -1;
        }
        keys->key[q] = (const uint8_t *)PyBytes_AS_STRING(key);
        keys->length[q] = PyBytes_GET_SIZE(key);
    }
    return 0;
}

PyDoc_STRVAR(chain_doc,
             "chain(buf, heads, lengths) -> (count, offset)\n\n"
             "Walk a TFRecord file's lengths: heads (int64) and lengths (uint64), each\n"
             "with at least len(buf) // 12 + 1 places, get the offset and the length\n"
             "field of each record header that has its 12 bytes; the walk stops where\n"
             "fewer are left. offset is where the next header would be (beyond len(buf)\n"
             "when the last record is cut short). Checks nothing else.");

static PyObject *py_chain(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf, heads_buf, lengths_buf;
    if (!PyArg_ParseTuple(args, "y*w*w*", &buf, &heads_buf, &lengths_buf))
        return NULL;
    PyObject *result = NULL;
    const int64_t size = buf.len;
    if (heads_buf.len < (size / 12 + 1) * 8 || lengths_buf.len < (size / 12 + 1) * 8) {
        PyErr_SetString(PyExc_ValueError, "heads or lengths has too few places");
        goto done;
    }
    const uint8_t *b = buf.buf;
    int64_t *heads = heads_buf.buf;
    uint64_t *lengths = lengths_buf.buf;
    int64_t offset = 0, count = 0;
    Py_BEGIN_ALLOW_THREADS
    while (size - offset >= 12) {
        uint64_t length = 0;
        for (int q = 7; q >= 0; q--) /* little-endian, whatever the CPU */
            length = length << 8 | b[offset + q];
        heads[count] = offset;
        lengths[count++] = length;
        if (length > (uint64_t)(size - offset)) {
            offset = size + 1;
            break;
        }
        offset += (int64_t)length + 16;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(LL)", (long long)count, (long long)offset);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&heads_buf);
    PyBuffer_Release(&lengths_buf);
    return result;
}

/* The varint at *pos (< end) of a packed int64 run ending at end; advances *pos past
 * it. Returns whether the general decoder accepts it: not if the run ends inside it,
 * if it has an 11th byte or a 10th byte above 1 (bits past 64). The value is stored
 * either way, so that counts add up. */
static int next_varint(const uint8_t *b, int64_t *pos, int64_t end, int64_t *out)
{
    uint64_t value = 0;
    int ok = 1;
    for (int j = 0;; j++) {
        const uint8_t byte = b[(*pos)++];
        if (j == 10)
            ok = 0;
        else if (j == 9 && (byte & 0x7F) > 1)
            ok = 0;
        if (j < 10)
            value |= (uint64_t)(byte & 0x7F) << (7 * j);
        if (byte < 0x80)
            break;
        if (*pos == end) {
            ok = 0;
            break;
        }
    }
    *out = (int64_t)value;
    return ok;
}

PyDoc_STRVAR(varints_doc,
             "varints(buf, starts, lengths, values, counts, valid) -> int\n\n"
             "The packed int64 runs buf[starts[i]:starts[i] + lengths[i]], as\n"
             "fastparse.decode_varints: values (int64, room for sum(lengths)) one run\n"
             "after another, counts[i] of them for run i, valid[i] (uint8) whether the\n"
             "general decoder would accept the run. Returns how many values in all.");

static PyObject *py_varints(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf, starts_buf, lengths_buf, values_buf, counts_buf, valid_buf;
    if (!PyArg_ParseTuple(args, "y*y*y*w*w*w*", &buf, &starts_buf, &lengths_buf, &values_buf,
                          &counts_buf, &valid_buf))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t runs = starts_buf.len / 8;
    if (starts_buf.len % 8 || check_len(&lengths_buf, runs, 8, "lengths") ||
        check_len(&counts_buf, runs, 8, "counts") || check_len(&valid_buf, runs, 1, "valid") ||
        values_buf.len % 8)
        goto done;
    const int64_t *starts = starts_buf.buf, *lengths = lengths_buf.buf;
    int64_t total = 0;
    for (Py_ssize_t r = 0; r < runs; r++) {
        if (lengths[r] < 0 || starts[r] < 0 || starts[r] > buf.len - lengths[r]) {
            PyErr_Format(PyExc_ValueError, "run %zd is outside the buffer", r);
            goto done;
        }
        total += lengths[r];
    }
    if (values_buf.len / 8 < total) {
        PyErr_SetString(PyExc_ValueError, "values has too few places");
        goto done;
    }
    const uint8_t *b = buf.buf;
    int64_t *values = values_buf.buf, *counts = counts_buf.buf;
    uint8_t *valid = valid_buf.buf;
    int64_t m = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < runs; r++) {
        int64_t pos = starts[r];
        const int64_t end = pos + lengths[r], first = m;
        uint8_t ok = 1;
        while (pos < end)
            ok &= (uint8_t)next_varint(b, &pos, end, &values[m++]);
        counts[r] = m - first;
        valid[r] = ok;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromLongLong((long long)m);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts_buf);
    PyBuffer_Release(&lengths_buf);
    PyBuffer_Release(&values_buf);
    PyBuffer_Release(&counts_buf);
    PyBuffer_Release(&valid_buf);
    return result;
}

typedef uint32_t (*crc_fn)(const uint8_t *data, size_t count);

PyDoc_STRVAR(crcs_doc,
             "crcs(buf, starts, ends, crc32c_value, stored_at, ok) -> None\n\n"
             "ok[i] (uint8): the masked CRC32C of buf[starts[i]:ends[i]], as TFRecord\n"
             "masks it, equals the little-endian uint32 at buf[stored_at[i]:]. The CRC is\n"
             "crc32c_value, the address of that C function of Google's crc32c library\n"
             "(the one the google-crc32c wheel ships; see native.py), called with the GIL\n"
             "released.");

static PyObject *py_crcs(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf, starts_buf, ends_buf, stored_buf, ok_buf;
    unsigned long long address;
    if (!PyArg_ParseTuple(args, "y*y*y*Ky*w*", &buf, &starts_buf, &ends_buf, &address, &stored_buf,
                          &ok_buf))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = starts_buf.len / 8;
    if (starts_buf.len % 8 || check_len(&ends_buf, n, 8, "ends") ||
        check_len(&stored_buf, n, 8, "stored_at") || check_len(&ok_buf, n, 1, "ok"))
        goto done;
    if (!address) {
        PyErr_SetString(PyExc_ValueError, "no crc32c_value function");
        goto done;
    }
    const int64_t *starts = starts_buf.buf, *ends = ends_buf.buf, *stored_at = stored_buf.buf;
    if (check_spans(&buf, starts, ends, n))
        goto done;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (stored_at[r] < 0 || stored_at[r] > buf.len - 4) {
            PyErr_Format(PyExc_ValueError, "stored CRC %zd at %lld is outside the buffer", r,
                         (long long)stored_at[r]);
            goto done;
        }
    }
    const crc_fn crc = (crc_fn)(uintptr_t)address;
    const uint8_t *b = buf.buf;
    uint8_t *ok = ok_buf.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        /* The next record asked into L2 while this one is summed, its memory wait
         * hidden behind this work (0.024 -> 0.016 s for dev/). Its first 16 KB only:
         * a longer record streams well enough, and must not push this one out. */
        if (r + 1 < n) {
            const int64_t stop = ends[r + 1] < starts[r + 1] + PREFETCH_BYTES
                                     ? ends[r + 1]
                                     : starts[r + 1] + PREFETCH_BYTES;
            for (int64_t at = starts[r + 1]; at < stop; at += 64)
                __builtin_prefetch(b + at, 0, 2);
        }
        const uint32_t sum = crc(b + starts[r], (size_t)(ends[r] - starts[r]));
        const uint32_t masked = ((sum >> 15) | (sum << 17)) + 0xA282EAD8u;
        const uint8_t *at = b + stored_at[r];
        const uint32_t stored = (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 |
                                (uint32_t)at[3] << 24;
        ok[r] = masked == stored;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts_buf);
    PyBuffer_Release(&ends_buf);
    PyBuffer_Release(&stored_buf);
    PyBuffer_Release(&ok_buf);
    return result;
}

/* ------------------------------------------------------------------ video records */

/* The fields of one video-level record that examine reads: the scan's columns for
 * every key (zero where absent). */
typedef struct {
    int64_t kind[MAX_KEYS], start[MAX_KEYS], length[MAX_KEYS];
} Fields;

/* Whether a plain record passes every check but the feature widths and finiteness:
 * an id (the first id key present) that is one bytes value, labels absent or a valid
 * int64 list of ids in [0, num_classes) (num_classes < 0: no upper bound), every
 * feature a float list. Keys: ids_keys id keys, then the labels, then the features. */
static int passes(const uint8_t *b, const Fields *f, int id_keys, int count, int64_t num_classes,
                  int *id_q)
{
    *id_q = -1;
    for (int q = 0; q < id_keys && *id_q < 0; q++)
        if (f->kind[q])
            *id_q = q;
    if (*id_q < 0 || f->kind[*id_q] != BYTES_LIST)
        return 0;
    /* The scan leaves a record with an int64 list that the general decoder rejects
     * out of the plain ones, whichever key it is under (a later id key is not read,
     * but it must decode). */
    for (int q = 0; q < id_keys; q++) {
        if (f->kind[q] != INT64_LIST)
            continue;
        int64_t pos = f->start[q], value;
        const int64_t end = pos + f->length[q];
        while (pos < end)
            if (!next_varint(b, &pos, end, &value))
                return 0;
    }
    const int labels = id_keys;
    if (f->kind[labels]) {
        if (f->kind[labels] != INT64_LIST)
            return 0;
        int64_t pos = f->start[labels];
        const int64_t end = pos + f->length[labels];
        while (pos < end) {
            int64_t value;
            if (!next_varint(b, &pos, end, &value) || value < 0 ||
                (num_classes >= 0 && value >= num_classes))
                return 0;
        }
    }
    for (int q = labels + 1; q < count; q++)
        if (f->kind[q] != FLOAT_LIST)
            return 0;
    return 1;
}

PyDoc_STRVAR(examine_doc,
             "examine(buf, starts, ends, keys, id_keys, num_classes, dims, ok, table) -> None\n\n"
             "The scan and the checks of shard._check_records over the Examples\n"
             "buf[starts[i]:ends[i]], one record at a time. keys (bytes): id_keys id keys,\n"
             "the labels key, then one key a modality; num_classes -1 for no upper bound.\n"
             "ok[i] (uint8): record i is plain and passes every check but finiteness.\n"
             "dims (int64, one a modality): a given width or -1 to take that of the first\n"
             "record passing the other checks (0 if none); set on return. table (int64,\n"
             "(4 + modalities, n)), where ok: the id's start and length, the labels'\n"
             "packed payload start and length (-1 where absent), each feature's start.");

static PyObject *py_examine(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf, starts_buf, ends_buf, dims_buf, ok_buf, table_buf;
    PyObject *key_tuple;
    int id_keys;
    long long num_classes;
    if (!PyArg_ParseTuple(args, "y*y*y*O!iLw*w*w*", &buf, &starts_buf, &ends_buf, &PyTuple_Type,
                          &key_tuple, &id_keys, &num_classes, &dims_buf, &ok_buf, &table_buf))
        return NULL;
    PyObject *result = NULL;
    int64_t *width = NULL;
    Keys keys = {0};
    keys.count = (int)PyTuple_GET_SIZE(key_tuple);
    const int modalities = keys.count - id_keys - 1;
    if (id_keys < 1 || modalities < 0 || keys.count > MAX_KEYS) {
        PyErr_Format(PyExc_ValueError, "%d keys with %d id keys: at most %d keys, an id and labels",
                     keys.count, id_keys, MAX_KEYS);
        goto done;
    }
    if (read_keys(key_tuple, &keys))
        goto done;
    const Py_ssize_t n = starts_buf.len / 8;
    if (starts_buf.len % 8 || check_len(&ends_buf, n, 8, "ends") ||
        check_len(&dims_buf, modalities, 8, "dims") || check_len(&ok_buf, n, 1, "ok") ||
        check_len(&table_buf, (4 + modalities) * n, 8, "table"))
        goto done;
    const int64_t *starts = starts_buf.buf, *ends = ends_buf.buf;
    if (check_spans(&buf, starts, ends, n))
        goto done;
    /* Each record's feature widths, in floats, until the dims are known. */
    width = PyMem_Malloc(((size_t)modalities * (size_t)n + 1) * sizeof(int64_t));
    if (width == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *b = buf.buf;
    uint8_t *ok = ok_buf.buf;
    int64_t *dims = dims_buf.buf, *table = table_buf.buf;
    const int labels = id_keys, features = id_keys + 1;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t first = -1;
    for (Py_ssize_t r = 0; r < n; r++) {
        Fields f = {{0}, {0}, {0}};
        int id_q = -1;
        ok[r] = (uint8_t)(record(b, starts[r], ends[r], &keys, f.kind, f.start, f.length) &&
                          passes(b, &f, id_keys, keys.count, num_classes, &id_q));
        for (int row = 0; row < 4 + modalities; row++)
            table[row * n + r] = 0;
        if (!ok[r])
            continue;
        if (first < 0)
            first = r;
        table[0 * n + r] = f.start[id_q];
        table[1 * n + r] = f.length[id_q];
        table[2 * n + r] = f.start[labels];
        table[3 * n + r] = f.kind[labels] ? f.length[labels] : -1;
        for (int m = 0; m < modalities; m++) {
            table[(4 + m) * n + r] = f.start[features + m];
            width[m * n + r] = f.length[features + m] / 4;
        }
    }
    /* As _fast_records: the widths of the first passing record, then a modality at a
     * time, the records of other widths dropped. */
    int any = first >= 0;
    for (int m = 0; m < modalities; m++) {
        if (dims[m] < 0)
            dims[m] = any ? width[m * n + first] : 0;
        any = 0;
        for (Py_ssize_t r = 0; r < n; r++) {
            if (ok[r] && width[m * n + r] != dims[m])
                ok[r] = 0;
            any |= ok[r];
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(width);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts_buf);
    PyBuffer_Release(&ends_buf);
    PyBuffer_Release(&dims_buf);
    PyBuffer_Release(&ok_buf);
    PyBuffer_Release(&table_buf);
    return result;
}

/* ------------------------------------------------------------------ feature rows */

/* Float32 bits with an all-ones exponent: Inf or NaN. */
#define EXPONENT 0x7F800000u

/* One row of width float32 values copied from src (any alignment) to dst; whether
 * all of them are finite. Written to be vectorised by the compiler. */
static int row_f32(const uint8_t *src, Py_ssize_t width, float *dst)
{
    memcpy(dst, src, (size_t)width * 4);
    const uint32_t *bits = (const uint32_t *)dst;
    uint32_t bad = 0;
    for (Py_ssize_t i = 0; i < width; i++)
        bad |= (bits[i] & EXPONENT) == EXPONENT;
    return !bad;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_HALF_ROWS 1

/* Float16 bits with an all-ones exponent: Inf or NaN. */
#define HALF_EXPONENT 0x7C00

/* As row_f32, but converted to float16 by the CPU's conversion instruction, which
 * rounds as IEEE 754 says (nearest, ties to even; subnormals; overflow to infinity),
 * as numpy's and PyTorch's casts do. The check is of the float16 values: a finite
 * float32 beyond float16's range (|x| >= 65520) becomes infinity, and such a row is
 * refused like one holding Inf, rather than stored changed. The row is read from
 * memory once: the copy, the cast and the check are one pass. */
__attribute__((target("avx2,f16c"))) static int row_f16(const uint8_t *src, Py_ssize_t width,
                                                        uint16_t *dst)
{
    const __m128i exponent = _mm_set1_epi16((short)HALF_EXPONENT);
    __m128i bad = _mm_setzero_si128();
    Py_ssize_t i = 0;
    for (; i + 8 <= width; i += 8) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(src + 4 * i));
        const __m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(v), _MM_FROUND_TO_NEAREST_INT);
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent));
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    if (i < width) {
        /* The tail through buffers of 8, zero-padded (zero is finite). */
        uint32_t tail[8] = {0};
        uint16_t half[8];
        memcpy(tail, src + 4 * i, (size_t)(width - i) * 4);
        const __m256i v = _mm256_loadu_si256((const __m256i *)tail);
        const __m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(v), _MM_FROUND_TO_NEAREST_INT);
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent));
        _mm_storeu_si128((__m128i *)half, h);
        memcpy(dst + i, half, (size_t)(width - i) * 2);
    }
    return _mm_testz_si128(bad, bad);
}
#endif

/* Whether this CPU runs row_f16. */
static int half_rows(void)
{
#ifdef HAVE_HALF_ROWS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

PyDoc_STRVAR(rows_doc,
             "rows(buf, starts, width, out, finite) -> None\n\n"
             "Row i of out = the width float32 values (little-endian) at buf[starts[i]:],\n"
             "as float32 or, when out holds 2 bytes a value (only where HALF is true),\n"
             "cast to float16; finite[i] (uint8) whether all of them are finite in out\n"
             "(a float32 beyond float16's range becomes Inf there, and is not).\n"
             "One pass over the rows, the GIL released.");

static PyObject *py_rows(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf, starts_buf, out_buf, finite_buf;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*y*nw*w*", &buf, &starts_buf, &width, &out_buf, &finite_buf))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = starts_buf.len / 8;
    if (starts_buf.len % 8 || width < 0 || check_len(&finite_buf, n, 1, "finite"))
        goto done;
    const int half = n && width && out_buf.len == n * width * 2;
    if (!half && check_len(&out_buf, n * width, 4, "out"))
        goto done;
    if (half && !half_rows()) {
        PyErr_SetString(PyExc_ValueError, "float16 rows need a CPU with AVX2 and F16C");
        goto done;
    }
    const int64_t *starts = starts_buf.buf;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (starts[r] < 0 || starts[r] + 4 * width > buf.len) {
            PyErr_Format(PyExc_ValueError, "row %zd at byte %lld runs outside the buffer", r,
                         (long long)starts[r]);
            goto done;
        }
    }
    const uint8_t *b = buf.buf;
    uint8_t *finite = finite_buf.buf;
    Py_BEGIN_ALLOW_THREADS
#ifdef HAVE_HALF_ROWS
    if (half)
        for (Py_ssize_t r = 0; r < n; r++)
            finite[r] = (uint8_t)row_f16(b + starts[r], width, (uint16_t *)out_buf.buf + r * width);
    else
#endif
        for (Py_ssize_t r = 0; r < n; r++)
            finite[r] = (uint8_t)row_f32(b + starts[r], width, (float *)out_buf.buf + r * width);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts_buf);
    PyBuffer_Release(&out_buf);
    PyBuffer_Release(&finite_buf);
    return result;
}

static PyMethodDef methods[] = {
    {"varints", py_varints, METH_VARARGS, varints_doc},
    {"crcs", py_crcs, METH_VARARGS, crcs_doc},
    {"chain", py_chain, METH_VARARGS, chain_doc},
    {"rows", py_rows, METH_VARARGS, rows_doc},
    {"examine", py_examine, METH_VARARGS, examine_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native_examples", "TFRecord framing, CRCs, Example checks and feature rows.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native_examples(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "HALF", half_rows())) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* Top k of each row of a float32 score matrix, for GAP@k and top_k.
 *
 * Why C: an exact GAP@k must read every score once, and that read is the floor. numpy
 * needs three passes over a block to select the top k (group maxima, compare, mask
 * scan); torch.topk copies and partitions every row; faiss's k-max heaps branch on
 * every score (bench/bench_gap.py times all three). Here each row is read from
 * memory once, then once more from the L1 cache, and the next row is fetched while
 * the current one is finished (see native_topk_row.h).
 *
 * Tie rule, as in topk.py: among equal scores the lower class ranks first.
 *
 * Buffers come through the buffer protocol (numpy arrays, C-contiguous), so no
 * numpy headers are needed at build time. The loops release the GIL: Python runs
 * blocks of rows on several threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#define CHUNK 16
#define LANES 64
/* Up to this many candidates, they are ranked by counting (see RANK_FEW). */
#define FEW 64

/* The row kernel, compiled twice: for any x86-64 (SSE2) or other CPU, and with
 * AVX-512 for the CPUs that have it, chosen at run time. */
#define ROW_FN top_k_row_generic
#include "native_topk_row.h"
#undef ROW_FN

#if defined(__GNUC__) && defined(__x86_64__)
#define HAVE_AVX512_ROW 1
#pragma GCC push_options
#pragma GCC target("avx512f")
#define ROW_FN top_k_row_avx512
#include "native_topk_row.h"
#undef ROW_FN
#pragma GCC pop_options
#endif

typedef Py_ssize_t (*row_fn)(const float *, Py_ssize_t, int, float *, int32_t *, float *,
                             int32_t *, const float *);

static row_fn pick_row_fn(int wide)
{
#ifdef HAVE_AVX512_ROW
    if (wide && __builtin_cpu_supports("avx512f"))
        return top_k_row_avx512;
#endif
    (void)wide;
    return top_k_row_generic;
}

static int check_size(const Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize,
                      const char *name)
{
    if (buf->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd", name, buf->len,
                     items * itemsize);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(top_k_doc,
             "top_k(scores, n, c, k, out_indices, out_values, wide=True) -> None\n\n"
             "Top k of each of n rows of c float32 scores (C order), highest first,\n"
             "equal scores by lower class; int32 indices and float32 values go to the\n"
             "(n, k) outputs. ValueError on NaN, naming its row. wide=False keeps to\n"
             "the generic kernel even where AVX-512 is there (the tests compare both).");

static PyObject *py_top_k(PyObject *self, PyObject *args)
{
    Py_buffer scores, out_idx, out_val;
    Py_ssize_t n, c;
    int k, wide = 1;
    if (!PyArg_ParseTuple(args, "y*nniw*w*|p", &scores, &n, &c, &k, &out_idx, &out_val, &wide))
        return NULL;
    PyObject *result = NULL;
    if (n < 0 || c <= 0 || k <= 0 || k > c) {
        PyErr_Format(PyExc_ValueError, "bad shape: n=%zd c=%zd k=%d", n, c, k);
        goto done;
    }
    if (check_size(&scores, n * c, 4, "scores") || check_size(&out_idx, n * k, 4, "indices") ||
        check_size(&out_val, n * k, 4, "values"))
        goto done;
    const row_fn top_k_row = pick_row_fn(wide);
    const float *x = scores.buf;
    int32_t *idx = out_idx.buf;
    float *val = out_val.buf;
    /* Room for every score of a row as a candidate, the most pass 2 can copy out, and
     * the 16 lanes its last step stores. */
    float *cand_vals = PyMem_RawMalloc(((size_t)c + 16) * sizeof(float));
    int32_t *cand_idx = PyMem_RawMalloc(((size_t)c + 16) * sizeof(int32_t));
    if (!cand_vals || !cand_idx) {
        PyMem_RawFree(cand_vals);
        PyMem_RawFree(cand_idx);
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nan_row = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        const float *ahead = r + 1 < n ? x + (r + 1) * c : NULL;
        if (top_k_row(x + r * c, c, k, val + r * k, idx + r * k, cand_vals, cand_idx, ahead) >= 0) {
            nan_row = r;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(cand_vals);
    PyMem_RawFree(cand_idx);
    if (nan_row >= 0) {
        PyErr_Format(PyExc_ValueError, "scores contain NaN (row %zd of the block)", nan_row);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&scores);
    PyBuffer_Release(&out_idx);
    PyBuffer_Release(&out_val);
    return result;
}

PyDoc_STRVAR(label_hits_doc,
             "label_hits(indices, n, k, indptr, labels, num_classes, out_hits) -> None\n\n"
             "For (n, k) int32 class indices, whether each is a label of its row: the\n"
             "labels of row i are labels[indptr[i]:indptr[i+1]] (int64 indptr, int32\n"
             "labels in [0, num_classes), CSR). Writes 0/1 bytes to the (n, k) output;\n"
             "a negative index (padding) is never a hit.");

static PyObject *py_label_hits(PyObject *self, PyObject *args)
{
    Py_buffer indices, indptr_buf, labels_buf, out;
    Py_ssize_t n, num_classes;
    int k;
    if (!PyArg_ParseTuple(args, "y*niy*y*nw*", &indices, &n, &k, &indptr_buf, &labels_buf,
                          &num_classes, &out))
        return NULL;
    PyObject *result = NULL;
    uint8_t *marked = NULL;
    if (n < 0 || k <= 0 || num_classes <= 0) {
        PyErr_Format(PyExc_ValueError, "bad shape: n=%zd k=%d classes=%zd", n, k, num_classes);
        goto done;
    }
    if (check_size(&indices, n * k, 4, "indices") || check_size(&indptr_buf, n + 1, 8, "indptr") ||
        check_size(&out, n * k, 1, "hits") || labels_buf.len % 4 != 0)
        goto done;
    const int64_t *indptr = indptr_buf.buf;
    const int32_t *labels = labels_buf.buf;
    const int64_t num_labels = labels_buf.len / 4;
    /* Every bound is checked before any read or write it guards: bad input is an
     * error, never an access outside a buffer. */
    for (Py_ssize_t r = 0; r < n; r++) {
        if (indptr[r] < 0 || indptr[r] > indptr[r + 1] || indptr[r + 1] > num_labels) {
            PyErr_Format(PyExc_ValueError, "indptr is not a CSR row index (row %zd)", r);
            goto done;
        }
    }
    for (int64_t q = indptr[0]; q < indptr[n]; q++) {
        if (labels[q] < 0 || labels[q] >= num_classes) {
            PyErr_Format(PyExc_ValueError, "label %d outside [0, %zd)", labels[q], num_classes);
            goto done;
        }
    }
    /* One byte a class, set for the row's labels and cleared after it: a look-up a
     * predicted class instead of a compare with every label. */
    marked = PyMem_RawCalloc((size_t)num_classes, 1);
    if (!marked) {
        PyErr_NoMemory();
        goto done;
    }
    const int32_t *top = indices.buf;
    uint8_t *hits = out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        for (int64_t q = indptr[r]; q < indptr[r + 1]; q++)
            marked[labels[q]] = 1;
        for (int t = 0; t < k; t++) {
            const int32_t cls = top[r * k + t];
            hits[r * k + t] = cls >= 0 && cls < num_classes && marked[cls];
        }
        for (int64_t q = indptr[r]; q < indptr[r + 1]; q++)
            marked[labels[q]] = 0;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(marked);
    PyBuffer_Release(&indices);
    PyBuffer_Release(&indptr_buf);
    PyBuffer_Release(&labels_buf);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(count_at_least_doc,
             "count_at_least(ranked, queries, out) -> None\n\n"
             "For float32 queries in ascending order, how many of the ascending float32\n"
             "ranked scores are >= each (int64 out): numpy's searchsorted, as one merge\n"
             "instead of a binary search a query.");

static PyObject *py_count_at_least(PyObject *self, PyObject *args)
{
    Py_buffer ranked_buf, queries_buf, out_buf;
    if (!PyArg_ParseTuple(args, "y*y*w*", &ranked_buf, &queries_buf, &out_buf))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = ranked_buf.len / 4, m = queries_buf.len / 4;
    if (ranked_buf.len % 4 || queries_buf.len % 4 || check_size(&out_buf, m, 8, "out"))
        goto done;
    const float *ranked = ranked_buf.buf, *queries = queries_buf.buf;
    int64_t *out = out_buf.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t below = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        while (below < n && ranked[below] < queries[i])
            below++;
        out[i] = n - below;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&ranked_buf);
    PyBuffer_Release(&queries_buf);
    PyBuffer_Release(&out_buf);
    return result;
}

static PyMethodDef methods[] = {
    {"count_at_least", py_count_at_least, METH_VARARGS, count_at_least_doc},
    {"top_k", py_top_k, METH_VARARGS, top_k_doc},
    {"label_hits", py_label_hits, METH_VARARGS, label_hits_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native_topk", "One-pass top-k selection of score rows.", -1, methods,
};

PyMODINIT_FUNC PyInit__native_topk(void) { return PyModule_Create(&module); }

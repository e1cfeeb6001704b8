/* Top k of one row of c scores, included by native_topk.c once for each
 * instruction set: ROW_FN names the function; __AVX512F__ is defined where the
 * including file has switched the target to AVX-512. Only the vector primitives
 * differ; the selection, and so the result, is the same in every version.
 *
 * Pass 1 takes the maxima of LANES interleaved groups (class j in group j % LANES);
 * the k-th largest of them is a lower bound of the row's k-th largest score, since
 * k distinct groups hold a score at least that high. Pass 2, over the row now in
 * the L1 cache, copies out the scores at or above the bound (a few more than k on
 * real and random scores) with their classes, in class order. The top k of those
 * are then ranked without data-dependent branches. Returns the first NaN's class,
 * or -1. */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define LANE_MAXIMA CAT(ROW_FN, _lane_maxima)
#define LANE_BOUND CAT(ROW_FN, _lane_bound)
#define COLLECT CAT(ROW_FN, _collect)
#define RANK_FEW CAT(ROW_FN, _rank_few)

#ifdef __AVX512F__
static inline void LANE_MAXIMA(const float *x, Py_ssize_t c, __m512 *lanes)
{
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    Py_ssize_t j = 0;
    for (; j + LANES <= c; j += LANES) {
        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + j));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + j + 16));
        m2 = _mm512_max_ps(m2, _mm512_loadu_ps(x + j + 32));
        m3 = _mm512_max_ps(m3, _mm512_loadu_ps(x + j + 48));
    }
    /* The tail, shorter than LANES, with masked loads (masked-off lanes read -inf). */
    __m512 *acc[4] = {&m0, &m1, &m2, &m3};
    for (int q = 0; q < 4 && j + 16 * q < c; q++) {
        const Py_ssize_t left = c - j - 16 * q;
        const __mmask16 live = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), live, x + j + 16 * q);
        *acc[q] = _mm512_max_ps(*acc[q], v);
    }
    lanes[0] = m0;
    lanes[1] = m1;
    lanes[2] = m2;
    lanes[3] = m3;
}

/* The k-th largest lane: the least lane with fewer than k lanes above it. Each lane's
 * count of larger lanes is kept in vectors, so there is no branch and no chain of
 * dependent scalar steps. NaN lanes (the row has a NaN, which pass 2 reports) count
 * as nothing. */
static inline float LANE_BOUND(const __m512 *lanes, int k)
{
    float flat[LANES];
    for (int q = 0; q < 4; q++)
        _mm512_storeu_ps(flat + 16 * q, lanes[q]);
    __m512i above[4];
    for (int q = 0; q < 4; q++)
        above[q] = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    for (int t = 0; t < LANES; t++) {
        const __m512 v = _mm512_set1_ps(flat[t]);
        for (int q = 0; q < 4; q++)
            above[q] = _mm512_mask_add_epi32(above[q], _mm512_cmp_ps_mask(lanes[q], v, _CMP_LT_OQ),
                                             above[q], one);
    }
    __m512 least = _mm512_set1_ps(INFINITY);
    const __m512i kv = _mm512_set1_epi32(k);
    for (int q = 0; q < 4; q++)
        least = _mm512_mask_min_ps(least, _mm512_cmplt_epi32_mask(above[q], kv), least, lanes[q]);
    return _mm512_reduce_min_ps(least);
}

/* Pass 2: every score >= bound, and its class, appended to (cv, ci) in class order;
 * returns how many, or -1 - the class of the first NaN. Branch-free: each step
 * compresses the classes of its candidates (often none) into a register and stores
 * all 16 lanes at the end of the list, which the next step overwrites (ci has 16
 * places more than a row); a branch on "any candidate here" was mispredicted at
 * every candidate. The scores are then read by class from the row, in L1. A NaN is
 * never below the bound, so it is among the candidates: checked there, once, rather
 * than by a second compare a step (compares and compresses share one port).
 * It reads one cache line a step, and asks for the same line of the next row
 * (`ahead`, NULL after the last): that row's pass 1 then finds it in cache, its
 * memory wait hidden behind this work instead of following it. Into L2, not L1: a
 * prefetch into L1 holds one of the core's few line-fill buffers until its line
 * arrives, which capped the stream of rows at about 7 GB/s a core here; with L2 as
 * the target the top k of a row took 1.4 us instead of 1.9 (one thread). */
static inline Py_ssize_t COLLECT(const float *x, Py_ssize_t c, float bound, float *cv, int32_t *ci,
                                 const float *ahead)
{
    const __m512 vb = _mm512_set1_ps(bound);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i cls = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    Py_ssize_t m = 0;
    for (Py_ssize_t j = 0; j < c; j += 16) {
        const Py_ssize_t left = c - j;
        if (ahead)
            _mm_prefetch((const char *)(ahead + j), _MM_HINT_T1);
        const __mmask16 live = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(live, x + j);
        /* Not below the bound: at least it, or NaN. */
        const __mmask16 keep = _mm512_mask_cmp_ps_mask(live, v, vb, _CMP_NLT_UQ);
        _mm512_storeu_si512((void *)(ci + m), _mm512_maskz_compress_epi32(keep, cls));
        m += __builtin_popcount(keep);
        cls = _mm512_add_epi32(cls, step);
    }
    int nan = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        cv[i] = x[ci[i]];
        nan |= cv[i] != cv[i];
    }
    if (nan) {
        for (Py_ssize_t j = 0; j < c; j++)
            if (x[j] != x[j])
                return -1 - j;
    }
    return m;
}

/* RANK_FEW (below) with the candidates in up to FEW / 16 registers: a candidate's
 * place is the count of lanes above it, or equal and before it, found 16 at once. */
#define HAVE_RANK_FEW_VECTOR 1
static inline void RANK_FEW(const float *cv, const int32_t *ci, Py_ssize_t m, int k,
                            float *vals, int32_t *idx)
{
    __m512 cand[FEW / 16];
    __mmask16 live[FEW / 16];
    const int regs = (int)((m + 15) / 16);
    for (int q = 0; q < regs; q++) {
        const Py_ssize_t left = m - 16 * q;
        live[q] = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
        cand[q] = _mm512_maskz_loadu_ps(live[q], cv + 16 * q);
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        const __m512 v = _mm512_set1_ps(cv[i]);
        int place = 0;
        for (int q = 0; q < regs; q++) {
            const Py_ssize_t lower = i - 16 * q; /* lanes of register q before i */
            const __mmask16 before =
                lower >= 16 ? 0xFFFF : lower <= 0 ? 0 : (__mmask16)((1u << lower) - 1);
            const __mmask16 above = _mm512_mask_cmp_ps_mask(live[q], cand[q], v, _CMP_GT_OQ);
            const __mmask16 tied = _mm512_mask_cmp_ps_mask(before, cand[q], v, _CMP_EQ_OQ);
            place += __builtin_popcount(above | tied);
        }
        if (place < k) {
            vals[place] = cv[i];
            idx[place] = ci[i];
        }
    }
}
#else
static inline void LANE_MAXIMA(const float *x, Py_ssize_t c, float *lanes)
{
    for (int t = 0; t < LANES; t++)
        lanes[t] = -INFINITY;
    Py_ssize_t j = 0;
    /* An elementwise maximum over contiguous runs, which the compiler vectorises. */
    for (; j + LANES <= c; j += LANES)
        for (int t = 0; t < LANES; t++)
            lanes[t] = x[j + t] > lanes[t] ? x[j + t] : lanes[t];
    for (; j < c; j++)
        lanes[j % LANES] = x[j] > lanes[j % LANES] ? x[j] : lanes[j % LANES];
}

/* The k-th largest lane, by the same count as the AVX-512 version, in plain loops. */
static inline float LANE_BOUND(const float *lanes, int k)
{
    float least = INFINITY;
    for (int t = 0; t < LANES; t++) {
        int above = 0;
        for (int q = 0; q < LANES; q++)
            above += lanes[q] > lanes[t];
        const float candidate = above < k ? lanes[t] : INFINITY;
        least = candidate < least ? candidate : least;
    }
    return least;
}

/* Bit q set where chunk[q] is not below thr: at least thr, or NaN. */
static inline unsigned not_below(const float *chunk, float thr)
{
    unsigned mask = 0;
#ifdef __SSE2__
    const __m128 t = _mm_set1_ps(thr);
    for (int q = 0; q < CHUNK; q += 4)
        mask |= (unsigned)_mm_movemask_ps(_mm_cmpnlt_ps(_mm_loadu_ps(chunk + q), t)) << q;
#else
    for (int q = 0; q < CHUNK; q++)
        mask |= (unsigned)!(chunk[q] < thr) << q;
#endif
    return mask;
}

static inline Py_ssize_t COLLECT(const float *x, Py_ssize_t c, float bound, float *cv, int32_t *ci,
                                 const float *ahead)
{
    Py_ssize_t m = 0, j = 0;
    for (; j + CHUNK <= c; j += CHUNK) {
        if (ahead)
            __builtin_prefetch(ahead + j, 0, 2);  /* into L2, as in the AVX-512 version */
        for (unsigned mask = not_below(x + j, bound); mask; mask &= mask - 1) {
            const Py_ssize_t at = j + __builtin_ctz(mask);
            if (x[at] != x[at])
                return -1 - at;
            cv[m] = x[at];
            ci[m++] = (int32_t)at;
        }
    }
    for (; j < c; j++) {
        if (x[j] != x[j])
            return -1 - j;
        if (x[j] >= bound) {
            cv[m] = x[j];
            ci[m++] = (int32_t)j;
        }
    }
    return m;
}
#endif

/* The top k of m <= FEW candidates (in class order): each one's place is the number
 * of candidates ranked before it (a higher score, or the same score and a lower
 * class), so every place is distinct and the loops have no data-dependent branch. */
#ifndef HAVE_RANK_FEW_VECTOR
static inline void RANK_FEW(const float *cv, const int32_t *ci, Py_ssize_t m, int k,
                            float *vals, int32_t *idx)
{
    for (Py_ssize_t i = 0; i < m; i++) {
        const float v = cv[i];
        int place = 0;
        for (Py_ssize_t q = 0; q < m; q++)
            place += (cv[q] > v) | ((cv[q] == v) & (q < i));
        if (place < k) {
            vals[place] = v;
            idx[place] = ci[i];
        }
    }
}
#endif
#undef HAVE_RANK_FEW_VECTOR

static Py_ssize_t ROW_FN(const float *x, Py_ssize_t c, int k, float *vals, int32_t *idx,
                         float *cv, int32_t *ci, const float *ahead)
{
#ifdef __AVX512F__
    __m512 lanes[4];
#else
    float lanes[LANES];
#endif
    LANE_MAXIMA(x, c, lanes);
    /* With more than LANES places to fill, every score is a candidate. Lanes that
     * saw no score (c < LANES) stay -inf, a bound below everything. */
    const float bound = k <= LANES ? LANE_BOUND(lanes, k) : -INFINITY;
    const Py_ssize_t m = COLLECT(x, c, bound, cv, ci, ahead);
    if (m < 0)
        return -1 - m;
    if (m <= FEW) {
        RANK_FEW(cv, ci, m, k, vals, idx);
        return -1;
    }
    /* Many candidates (ties at the bound, or k > LANES): a sorted insertion, in class
     * order, where a later score enters only when strictly above the k-th. */
    for (Py_ssize_t i = 0; i < m; i++) {
        const float v = cv[i];
        if (i >= k && !(v > vals[k - 1]))
            continue;
        int pos = i < k ? (int)i : k - 1;
        while (pos > 0 && vals[pos - 1] < v) {
            vals[pos] = vals[pos - 1];
            idx[pos] = idx[pos - 1];
            pos--;
        }
        vals[pos] = v;
        idx[pos] = ci[i];
    }
    return -1;
}

#undef LANE_MAXIMA
#undef LANE_BOUND
#undef COLLECT
#undef RANK_FEW
#undef CAT
#undef CAT_

/*
 * The survey's hot loop in C: walking the elements of a little endian DICOM dataset held in memory.
 *
 * `walk` does what `headers._walk_python` does, element for element: it keeps the raw value of
 * every wanted top-level tag, steps over undefined-length sequences, and hands control back to
 * the Python parser (by returning the offset of the top-level element it could not finish) at
 * anything it does not handle: the buffer's end, an unknown VR, a malformed sequence, nesting past
 * the depth limit. The Python parser then reads that element itself, so a file is always judged
 * by the Python rules; this module only makes the common case fast.
 *
 * Every read is bounds-checked against the buffer; lengths come from the file and are never trusted.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define UNDEFINED 0xFFFFFFFFu
#define ITEM 0xFFFEE000u
#define ITEM_END 0xFFFEE00Du
#define SEQUENCE_END 0xFFFEE0DDu
#define MAX_DEPTH 32
#define BAIL (-1)
#define MAX_FAST_WANTED 64

enum { VR_UNKNOWN = 0, VR_SHORT = 1, VR_LONG = 2 };

/* VR -> kind, indexed by the two upper-case letters; everything else is VR_UNKNOWN. */
static unsigned char vr_kind[26][26];

static const char *const SHORT_VRS[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO",
                                        "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US", NULL};
static const char *const LONG_VRS[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT",
                                       "SV", "UV", NULL};

static inline int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }

static inline int kind_of(unsigned char a, unsigned char b) {
    return (is_upper(a) && is_upper(b)) ? vr_kind[a - 'A'][b - 'A'] : VR_UNKNOWN;
}

static inline uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }

static inline uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline int is_pixel_data(uint32_t tag) {
    return tag == 0x7FE00010u || tag == 0x7FE00008u || tag == 0x7FE00009u;
}

/* The buffer: bytes at absolute file offsets [base, base + size). Offsets are absolute throughout. */
typedef struct {
    const unsigned char *data;
    Py_ssize_t base;
    Py_ssize_t end;
} Buffer;

static inline int has(const Buffer *b, Py_ssize_t pos, Py_ssize_t count) {
    return pos >= b->base && pos <= b->end - count;
}

static Py_ssize_t skip_sequence(const Buffer *b, Py_ssize_t pos, int implicit, int depth);

/*
 * The plain elements of an undefined-length item, as `_fast_*_le` walk them with stop = ITEM_END - 1
 * and nothing wanted: returns where that loop would stop.
 */
static Py_ssize_t item_plain_elements(const Buffer *b, Py_ssize_t pos, int implicit) {
    const uint32_t stop = ITEM_END - 1;
    while (has(b, pos, implicit ? 8 : 12)) {
        const unsigned char *p = b->data + (pos - b->base);
        uint32_t group = le16(p), tag = (group << 16) | le16(p + 2);
        if (tag > stop) return pos;
        if (implicit) {
            uint32_t length = le32(p + 4);
            if (length == UNDEFINED || group == 0xFFFEu) return pos;
            pos += 8 + (Py_ssize_t)length;
            continue;
        }
        switch (kind_of(p[4], p[5])) {
        case VR_SHORT:
            pos += 8 + (Py_ssize_t)le16(p + 6);
            break;
        case VR_LONG: {
            uint32_t length = le32(p + 8);
            if (length == UNDEFINED) return pos;
            pos += 12 + (Py_ssize_t)length;
            break;
        }
        default:
            return pos;
        }
    }
    return pos;
}

/* `_Parser.header`: one element header at pos. Returns 0, or BAIL where the Python parser would raise
 * or need bytes beyond the buffer. */
static int element_header(const Buffer *b, Py_ssize_t pos, int implicit, uint32_t *tag, int *is_un,
                          uint32_t *length, Py_ssize_t *value) {
    if (!has(b, pos, 8)) return BAIL;
    const unsigned char *p = b->data + (pos - b->base);
    uint32_t group = le16(p);
    *tag = (group << 16) | le16(p + 2);
    *is_un = 0;
    if (implicit || group == 0xFFFEu) {
        *length = le32(p + 4);
        *value = pos + 8;
        return 0;
    }
    if (!is_upper(p[4]) || !is_upper(p[5])) return BAIL; /* Python: "invalid VR" */
    *is_un = p[4] == 'U' && p[5] == 'N';
    if (kind_of(p[4], p[5]) == VR_LONG) {
        if (!has(b, pos, 12)) return BAIL;
        *length = le32(p + 8);
        *value = pos + 12;
    } else {
        *length = le16(p + 6);
        *value = pos + 8;
    }
    return 0;
}

/* `_Parser.skip_sequence`: from just after an undefined-length header to just after its delimiter. */
static Py_ssize_t skip_sequence(const Buffer *b, Py_ssize_t pos, int implicit, int depth) {
    if (depth > MAX_DEPTH) return BAIL;
    for (;;) {
        if (!has(b, pos, 8)) return BAIL;
        const unsigned char *p = b->data + (pos - b->base);
        uint32_t tag = (le16(p) << 16) | le16(p + 2), length = le32(p + 4);
        pos += 8;
        if (tag == SEQUENCE_END) return pos;
        if (tag != ITEM) return BAIL; /* Python: "expected an item" */
        if (length != UNDEFINED) {
            pos += (Py_ssize_t)length;
            continue;
        }
        for (;;) {
            pos = item_plain_elements(b, pos, implicit);
            uint32_t element_tag, element_length;
            int is_un;
            Py_ssize_t value;
            if (element_header(b, pos, implicit, &element_tag, &is_un, &element_length, &value) == BAIL) return BAIL;
            pos = value;
            if (element_tag == ITEM_END) break;
            if (element_length == UNDEFINED) {
                pos = skip_sequence(b, pos, implicit || is_un, depth + 1);
                if (pos == BAIL) return BAIL;
            } else {
                pos += (Py_ssize_t)element_length;
            }
        }
    }
}

/* The wanted tags: a C array when they are few plain ints (the survey asks for about twenty), else the
 * dict itself is asked. */
typedef struct {
    PyObject *dict;
    int in_array;
    Py_ssize_t count;
    uint32_t tags[MAX_FAST_WANTED];
    PyObject *keys[MAX_FAST_WANTED]; /* borrowed from the dict, which the caller holds for the whole call */
} Wanted;

static void wanted_init(Wanted *w, PyObject *dict) {
    w->dict = dict;
    w->in_array = 0;
    w->count = 0;
    if (PyDict_GET_SIZE(dict) > MAX_FAST_WANTED) return;
    Py_ssize_t i = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &i, &key, &value)) {
        if (!PyLong_CheckExact(key)) return;
        unsigned long long tag = PyLong_AsUnsignedLongLong(key);
        if (tag == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            continue; /* negative: can never match a tag */
        }
        if (tag > 0xFFFFFFFFull) continue;
        w->tags[w->count] = (uint32_t)tag;
        w->keys[w->count] = key;
        w->count++;
    }
    w->in_array = 1;
}

/* A new reference to the key under which tag's value is stored, NULL when not wanted (or on error). */
static PyObject *wanted_key(const Wanted *w, uint32_t tag, int *error) {
    if (w->in_array) {
        for (Py_ssize_t i = 0; i < w->count; i++) {
            if (w->tags[i] == tag) {
                Py_INCREF(w->keys[i]);
                return w->keys[i];
            }
        }
        return NULL;
    }
    PyObject *key = PyLong_FromUnsignedLong(tag);
    if (key == NULL) {
        *error = 1;
        return NULL;
    }
    int found = PyDict_Contains(w->dict, key);
    if (found > 0) return key;
    if (found < 0) *error = 1;
    Py_DECREF(key);
    return NULL;
}

static PyObject *result(Py_ssize_t pos, int finished) {
    return Py_BuildValue("(nO)", pos, finished ? Py_True : Py_False);
}

static PyObject *walk(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t base, pos;
    unsigned long long stop_arg;
    PyObject *wanted_dict, *values;
    int implicit, skip_sequences = 1;
    if (!PyArg_ParseTuple(args, "y*nnKO!O!p|p", &view, &base, &pos, &stop_arg, &PyDict_Type, &wanted_dict,
                          &PyDict_Type, &values, &implicit, &skip_sequences))
        return NULL;
    Buffer b = {(const unsigned char *)view.buf, base, base + view.len};
    const uint32_t stop = stop_arg > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)stop_arg;
    Wanted wanted;
    wanted_init(&wanted, wanted_dict);
    int finished = 0, error = 0;

    while (has(&b, pos, implicit ? 8 : 12)) {
        const unsigned char *p = b.data + (pos - b.base);
        uint32_t group = le16(p), tag = (group << 16) | le16(p + 2);
        if (tag > stop) {
            finished = 1;
            break;
        }
        uint32_t length;
        Py_ssize_t start;
        int is_un = 0;
        if (implicit) {
            length = le32(p + 4);
            if (group == 0xFFFEu) break;
            start = pos + 8;
        } else {
            int kind = kind_of(p[4], p[5]);
            if (kind == VR_SHORT) {
                length = le16(p + 6);
                start = pos + 8;
            } else if (kind == VR_LONG) {
                length = le32(p + 8);
                start = pos + 12;
                is_un = p[4] == 'U' && p[5] == 'N';
                if (length == UNDEFINED && !(is_un || (p[4] == 'S' && p[5] == 'Q'))) break;
            } else {
                break;
            }
        }
        PyObject *key = wanted_key(&wanted, tag, &error);
        if (error) break;
        if (length == UNDEFINED) {
            /* Left to the Python parser: a wanted element of undefined length (it refuses those), pixel
             * data (fragments, stepped over by its own rules) and item tags out of place. */
            if (!skip_sequences || key != NULL || is_pixel_data(tag) || group == 0xFFFEu) {
                Py_XDECREF(key);
                break;
            }
            Py_ssize_t after = skip_sequence(&b, start, implicit || is_un, 0);
            if (after == BAIL) break;
            pos = after;
            continue;
        }
        if (key != NULL) {
            if (start + (Py_ssize_t)length > b.end) {
                Py_DECREF(key);
                break;
            }
            PyObject *value = PyBytes_FromStringAndSize((const char *)b.data + (start - b.base), length);
            int failed = value == NULL || PyDict_SetItem(values, key, value) < 0;
            Py_XDECREF(value);
            Py_DECREF(key);
            if (failed) {
                error = 1;
                break;
            }
        }
        pos = start + (Py_ssize_t)length;
    }
    PyBuffer_Release(&view);
    if (error) return NULL;
    return result(pos, finished);
}

/* The first value of an element read as ASCII, as headers.decode_values cuts it: up to the first
 * backslash, spaces and NULs stripped from both ends; NULL with no error when nothing is left. */
static PyObject *first_ascii_value(const char *data, Py_ssize_t length) {
    const char *end = memchr(data, '\\', (size_t)length);
    if (end != NULL) length = end - data;
    Py_ssize_t start = 0;
    while (start < length && (data[start] == ' ' || data[start] == '\0')) start++;
    while (length > start && (data[length - 1] == ' ' || data[length - 1] == '\0')) length--;
    if (length == start) return NULL;
    return PyUnicode_DecodeASCII(data + start, length - start, "replace");
}

static int plain_ascii(const char *data, Py_ssize_t length) {
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c >= 0x80 || c == 0x1B) return 0; /* 0x1B: an ISO 2022 escape sequence */
    }
    return 1;
}

static PyObject *ascii_first_values(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *raw, *ascii_keywords, *text_keywords, *values;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyDict_Type, &raw, &PyDict_Type, &ascii_keywords, &PyDict_Type,
                          &text_keywords, &PyDict_Type, &values))
        return NULL;
    PyObject *left = PyList_New(0);
    if (left == NULL) return NULL;
    Py_ssize_t i = 0;
    PyObject *tag, *data;
    while (PyDict_Next(raw, &i, &tag, &data)) {
        PyObject *keyword = PyDict_GetItemWithError(ascii_keywords, tag);
        int plain = keyword != NULL;
        if (keyword == NULL && !PyErr_Occurred()) {
            keyword = PyDict_GetItemWithError(text_keywords, tag);
            plain = keyword != NULL && PyBytes_Check(data) &&
                    plain_ascii(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
        }
        if (PyErr_Occurred()) goto error;
        if (!plain || !PyBytes_Check(data) || !PyUnicode_Check(keyword)) {
            if (PyList_Append(left, tag) < 0) goto error;
            continue;
        }
        PyObject *value = first_ascii_value(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
        if (value == NULL) {
            if (PyErr_Occurred()) goto error;
            continue;
        }
        int failed = PyDict_SetItem(values, keyword, value) < 0;
        Py_DECREF(value);
        if (failed) goto error;
    }
    return left;
error:
    Py_DECREF(left);
    return NULL;
}

static PyMethodDef methods[] = {
    {"ascii_first_values", ascii_first_values, METH_VARARGS,
     "ascii_first_values(raw, ascii_keywords, text_keywords, values) -> list of tags left\n\n"
     "For each raw element whose tag is in ascii_keywords, or in text_keywords with bytes that are plain\n"
     "ASCII (no escape sequence), store its first value under the keyword in `values`. Returns the tags\n"
     "of the other elements, in order, for the Python decoder."},
    {"walk", walk, METH_VARARGS,
     "walk(data, base, pos, stop, wanted, values, implicit, skip_sequences=True) -> (pos, finished)\n\n"
     "Walk little endian elements of `data` (file offsets base..base+len(data)) from `pos`, storing the\n"
     "raw value of each top-level tag in `wanted` into `values`, stepping over undefined-length\n"
     "sequences unless skip_sequences is false. Returns where it stopped and whether a tag past `stop`\n"
     "was reached."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_walk",
    .m_doc = "The survey's element walker in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__walk(void) {
    for (const char *const *vr = SHORT_VRS; *vr != NULL; vr++) vr_kind[(*vr)[0] - 'A'][(*vr)[1] - 'A'] = VR_SHORT;
    for (const char *const *vr = LONG_VRS; *vr != NULL; vr++) vr_kind[(*vr)[0] - 'A'][(*vr)[1] - 'A'] = VR_LONG;
    return PyModule_Create(&module);
}

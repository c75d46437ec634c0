/* A compiled reader's hot loop in C, handing Arrow to Python through the Arrow C stream interface.
 *
 * squares_open() fills an ArrowArrayStream whose batches hold the rows (id, id * id) for ids
 * start..end-1, batch_size rows at a time. Nothing but the C library is needed: the structs
 * below are the ABI-stable ones of https://arrow.apache.org/docs/format/CStreamInterface.html,
 * which the specification asks producers to copy. squares_reader.py hands the stream to
 * pyarrow through the Arrow PyCapsule interface, so no row ever becomes a Python object.
 *
 * Build it beside squares_reader.py:
 *
 *     cc -shared -fPIC -O2 -o libsquares.so squares_stream.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

#endif /* ARROW_C_DATA_INTERFACE */

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE

struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *out);
    int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *out);
    const char *(*get_last_error)(struct ArrowArrayStream *);
    void (*release)(struct ArrowArrayStream *);
    void *private_data;
};

#endif /* ARROW_C_STREAM_INTERFACE */

#define N_COLUMNS 2
static const char *const COLUMN_NAMES[N_COLUMNS] = {"id", "square"};

typedef struct {
    int64_t next, end, batch_size;
    const char *error;
} squares_stream;

/* The schema: a struct of two non-nullable int64 columns. */

static void release_column_schema(struct ArrowSchema *schema) { schema->release = NULL; }

static void release_schema(struct ArrowSchema *schema) {
    for (int64_t i = 0; i < schema->n_children; i++) {
        struct ArrowSchema *child = schema->children[i];
        if (child->release != NULL) child->release(child);
        free(child);
    }
    free(schema->children);
    schema->release = NULL;
}

static int get_schema(struct ArrowArrayStream *stream, struct ArrowSchema *out) {
    squares_stream *state = stream->private_data;
    struct ArrowSchema **children = calloc(N_COLUMNS, sizeof *children);
    if (children == NULL) goto no_memory;
    for (int i = 0; i < N_COLUMNS; i++) {
        children[i] = malloc(sizeof **children);
        if (children[i] == NULL) goto no_memory;
        *children[i] = (struct ArrowSchema){
            .format = "l", .name = COLUMN_NAMES[i], .release = release_column_schema};
    }
    *out = (struct ArrowSchema){
        .format = "+s", .name = "", .n_children = N_COLUMNS, .children = children, .release = release_schema};
    return 0;
no_memory:
    if (children != NULL)
        for (int i = 0; i < N_COLUMNS; i++) free(children[i]);
    free(children);
    state->error = "out of memory building the schema";
    return ENOMEM;
}

/* A batch: a struct array whose two children each own one buffer of int64 values. */

static void release_column(struct ArrowArray *array) {
    free((void *)array->buffers[1]);
    free(array->buffers);
    array->release = NULL;
}

static void release_batch(struct ArrowArray *array) {
    for (int64_t i = 0; i < array->n_children; i++) {
        struct ArrowArray *child = array->children[i];
        if (child->release != NULL) child->release(child);
        free(child);
    }
    free(array->children);
    free(array->buffers);
    array->release = NULL;
}

static int make_column(struct ArrowArray **out, int64_t length, int64_t start, int squared) {
    struct ArrowArray *column = malloc(sizeof *column);
    const void **buffers = malloc(2 * sizeof *buffers);
    int64_t *values = malloc((size_t)(length > 0 ? length : 1) * sizeof *values);
    if (column == NULL || buffers == NULL || values == NULL) {
        free(column);
        free(buffers);
        free(values);
        return ENOMEM;
    }
    for (int64_t i = 0; i < length; i++) values[i] = squared ? (start + i) * (start + i) : start + i;
    buffers[0] = NULL; /* no validity bitmap: no nulls */
    buffers[1] = values;
    *column = (struct ArrowArray){
        .length = length, .n_buffers = 2, .buffers = buffers, .release = release_column};
    *out = column;
    return 0;
}

static int get_next(struct ArrowArrayStream *stream, struct ArrowArray *out) {
    squares_stream *state = stream->private_data;
    if (state->next >= state->end) {
        out->release = NULL; /* the end of the stream */
        return 0;
    }
    int64_t length = state->end - state->next;
    if (length > state->batch_size) length = state->batch_size;
    struct ArrowArray **children = calloc(N_COLUMNS, sizeof *children);
    const void **buffers = malloc(sizeof *buffers);
    if (children == NULL || buffers == NULL) goto no_memory;
    for (int i = 0; i < N_COLUMNS; i++)
        if (make_column(&children[i], length, state->next, i == 1) != 0) goto no_memory;
    buffers[0] = NULL;
    *out = (struct ArrowArray){.length = length,
                               .n_buffers = 1,
                               .n_children = N_COLUMNS,
                               .buffers = buffers,
                               .children = children,
                               .release = release_batch};
    state->next += length;
    return 0;
no_memory:
    if (children != NULL)
        for (int i = 0; i < N_COLUMNS; i++)
            if (children[i] != NULL) {
                children[i]->release(children[i]);
                free(children[i]);
            }
    free(children);
    free(buffers);
    state->error = "out of memory building a batch";
    return ENOMEM;
}

static const char *get_last_error(struct ArrowArrayStream *stream) {
    return ((squares_stream *)stream->private_data)->error;
}

static void release_stream(struct ArrowArrayStream *stream) {
    free(stream->private_data);
    stream->release = NULL;
}

/* Fill `out` with a stream of the rows start..end-1; returns 0, or EINVAL/ENOMEM. */
int squares_open(int64_t start, int64_t end, int64_t batch_size, struct ArrowArrayStream *out) {
    if (out == NULL || start < 0 || end < start || batch_size <= 0) return EINVAL;
    squares_stream *state = malloc(sizeof *state);
    if (state == NULL) return ENOMEM;
    *state = (squares_stream){.next = start, .end = end, .batch_size = batch_size};
    *out = (struct ArrowArrayStream){.get_schema = get_schema,
                                     .get_next = get_next,
                                     .get_last_error = get_last_error,
                                     .release = release_stream,
                                     .private_data = state};
    return 0;
}

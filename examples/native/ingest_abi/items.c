/* A native reader with the dativo-ingest ABI, in C: the same reader as items.rs.
 *
 * Dativo runs it as `plugin: path/to/libitems.so:create_reader`. Build it with
 *
 *     cc -shared -fPIC -O2 -o libitems.so items.c
 *
 * Config: `count` (required, >= 0) records with ids 0..count, `batch_size` per batch (100).
 * A real plugin parses its config with a JSON library; this one reads two integers by hand.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t next, end, batch_size;
} items_reader;

/* The integer after "key": in a JSON object; returns 0 when there is none. */
static int int_setting(const char *config, const char *key, int64_t *out) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *at = strstr(config, quoted);
    if (at == NULL) return 0;
    at += strlen(quoted);
    while (*at == ' ') at++;
    if (*at++ != ':') return 0;
    char *end;
    long long value = strtoll(at, &end, 10);
    if (end == at) return 0;
    *out = value;
    return 1;
}

void *create_reader(const char *config_json) {
    int64_t count, batch_size = 100;
    if (config_json == NULL) return NULL;
    if (!int_setting(config_json, "count", &count) || count < 0) {
        fprintf(stderr, "items: the config needs 'count', a non-negative integer\n");
        return NULL;
    }
    int_setting(config_json, "batch_size", &batch_size);
    if (batch_size <= 0) {
        fprintf(stderr, "items: 'batch_size' must be positive\n");
        return NULL;
    }
    items_reader *reader = malloc(sizeof *reader);
    if (reader == NULL) return NULL;
    reader->next = 0;
    reader->end = count;
    reader->batch_size = batch_size;
    return reader;
}

const char *extract_batch(void *handle) {
    items_reader *reader = handle;
    if (reader == NULL || reader->next >= reader->end) return NULL;
    int64_t stop = reader->next + reader->batch_size;
    if (stop > reader->end) stop = reader->end;
    size_t room = 2 + (size_t)(stop - reader->next) * 96, used = 0;
    char *json = malloc(room);
    if (json == NULL) return NULL;
    json[used++] = '[';
    for (int64_t i = reader->next; i < stop; i++) {
        used += (size_t)snprintf(json + used, room - used,
                                 "%s{\"id\":%lld,\"name\":\"item %lld\",\"price\":%.2f,\"active\":%s}",
                                 i > reader->next ? "," : "", (long long)i, (long long)i, (double)i * 1.5,
                                 i % 2 == 0 ? "true" : "false");
    }
    snprintf(json + used, room - used, "]");
    reader->next = stop;
    return json;
}

void free_string(char *text) { free(text); }

void free_reader(void *reader) { free(reader); }

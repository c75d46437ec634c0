/* A dativo-ingest ABI library that breaks the ABI's rules, one per config "fault":
 * 1: extract_batch returns text that is not JSON; 2: a JSON object instead of an array.
 * Built with -DOMIT_FREE_READER it lacks a symbol of the ABI. */
#include <stdlib.h>
#include <string.h>

void *create_reader(const char *config_json) {
    int *fault = malloc(sizeof *fault);
    if (fault == NULL) return NULL;
    *fault = strstr(config_json, "\"fault\": 2") != NULL ? 2 : 1;
    return fault;
}

const char *extract_batch(void *reader) {
    const char *text = *(int *)reader == 2 ? "{\"id\": 1}" : "[{\"id\": 1}, oops";
    char *copy = malloc(strlen(text) + 1);
    if (copy != NULL) strcpy(copy, text);
    return copy;
}

void free_string(char *text) { free(text); }

#ifndef OMIT_FREE_READER
void free_reader(void *reader) { free(reader); }
#endif

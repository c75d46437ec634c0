/* Linked into a test library: when it is loaded, append the loading process's pid to the file
 * named by DATIVO_TEST_NATIVE_MARKER. A sandbox worker gets a clean environment, so only a
 * load in the host (or in process, under backend none) writes the marker. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void record_load(void) {
    const char *path = getenv("DATIVO_TEST_NATIVE_MARKER");
    if (path == NULL) return;
    FILE *marker = fopen(path, "a");
    if (marker == NULL) return;
    fprintf(marker, "%d\n", (int)getpid());
    fclose(marker);
}

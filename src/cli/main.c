/* main.c - the `togethershot` program: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "ts_cli.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
#ifdef TS_HAVE_GENERATE
    {"generate", ts_cli_generate, "generate images from a prompt (and photos)"},
#endif
#ifdef TS_HAVE_SERVE
    {"serve", ts_cli_serve, "run the web service (page, OpenAI-compatible and job APIs)"},
#endif
#ifdef TS_HAVE_GALLERY
    {"gallery", ts_cli_gallery, "manage the protected-persons gallery"},
#endif
#ifdef TS_HAVE_BENCH
    {"bench", ts_cli_bench, "measure the engine's speed and memory"},
#endif
    {NULL, NULL, NULL},
};

static void usage(FILE *to)
{
    fprintf(to, "usage: togethershot COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; subcommands[i].name; i++)
        fprintf(to, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(to, "\n'togethershot COMMAND --help' describes each command.\n"
                "exit codes: 0 ok, 1 failure, 2 bad usage, 3 refused by policy\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TS_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return TS_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("togethershot %s\n", TS_VERSION);
        return TS_EXIT_OK;
    }
    for (size_t i = 0; subcommands[i].name; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);

    fprintf(stderr, "togethershot: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return TS_EXIT_USAGE;
}

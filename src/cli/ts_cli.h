/*
 * ts_cli.h - the subcommands of the `togethershot` program.
 *
 * Each subcommand lives in cmd_<name>.c and is entered with the arguments that
 * follow its name (argv[0] is the subcommand name). It returns the process exit
 * status; only the CLI prints and exits.
 *
 * Exit codes (documented in the README and in --help):
 *   0  success
 *   1  the work failed (model could not load, generation failed, I/O error)
 *   2  bad usage (unknown flag, missing or invalid value)
 *   3  refused by policy (portrait-rights check)
 */
#ifndef TS_CLI_H
#define TS_CLI_H

enum {
    TS_EXIT_OK = 0,
    TS_EXIT_FAILURE = 1,
    TS_EXIT_USAGE = 2,
    TS_EXIT_REFUSED = 3,
};

int ts_cli_generate(int argc, char **argv);
int ts_cli_serve(int argc, char **argv);
int ts_cli_gallery(int argc, char **argv);
int ts_cli_bench(int argc, char **argv);

/* The default model folder: $TOGETHERSHOT_MODEL, else the built-in model
 * installed next to the binary or in the source tree. */
const char *ts_cli_default_model(void);

#endif

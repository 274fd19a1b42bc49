/*
 * tests/fuzz/check_main.c — kvfs-check's main() (tools/check/main.c) compiled under the name
 * kvfs_check_main, so that the check fuzz harness (tests/fuzz/fuzz_check.c) and the replay
 * suite (tests/check_fuzz_regress.c) can run the checker in-process, argv and all.  Nothing
 * else changes: the same source, the same getopt parsing (the caller resets optind), the same
 * exit statuses returned instead of exiting.
 */
int kvfs_check_main(int argc, char **argv);
#define main kvfs_check_main
#include "tools/check/main.c"

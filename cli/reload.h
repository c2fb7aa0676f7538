/*
 * reload.h - `mxguard reload` (cli/reload.c): signal a running daemon to
 * reload and report the outcome it records.
 */
#ifndef MXG_CLI_RELOAD_H
#define MXG_CLI_RELOAD_H

#ifndef MXG_SYSCONFDIR
#define MXG_SYSCONFDIR "/etc/mxguard"
#endif
#define MXG_DEFAULT_CONFIG MXG_SYSCONFDIR "/mxguard.conf"

/* argv[0] is "reload". Exit status as the command returns it. */
int command_reload(int argc, char **argv);

#endif

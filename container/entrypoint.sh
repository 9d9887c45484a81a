#!/bin/sh
# Image ENTRYPOINT. XNAT's Container Service, with the command's "override-entrypoint": false, appends the
# command line (split on spaces, never through a shell) to this script; it sets a umask under which XNAT's
# own user can read everything written to /output, then runs the arguments unchanged.
# With "override-entrypoint": true XNAT clears the entrypoint and runs /bin/sh -c <command-line> instead;
# the command line starts with xnat-resource-survey (on PATH), so it works either way.
umask 0022
if [ "$#" -eq 0 ]; then
  set -- xnat-resource-survey --help
fi
exec "$@"

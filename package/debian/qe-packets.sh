#!/bin/sh
# The qe-packets command of the installed package: the daemon's CLI on the Node.js it ships.
exec /usr/lib/qe-packets/node/bin/node /usr/lib/qe-packets/build/daemon/src/cli.js "$@"

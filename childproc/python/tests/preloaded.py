"""A module the Go tests have a fork server preload: it records the process that
imported it."""

import os

IMPORTED_BY = os.getpid()

"""A module that starts a thread when imported: a fork server must refuse to preload
it."""

import threading

threading.Thread(target=threading.Event().wait, daemon=True).start()

# The Python floor: the smallest Python program that does a worker's job over a raw
# socket, started as procsup starts a child (the socket as fd 3): it echoes what it reads.
import os

while True:
    b = os.read(3, 65536)
    if not b:
        break
    os.write(3, b)

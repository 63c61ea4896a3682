# The Python fork floor: the smallest Python fork server. On descriptor 3 (a
# SOCK_SEQPACKET socket) it says "ready", then for each packet that carries a socket
# forks a child that echoes that socket, as pyrawecho.py does, and answers the child's
# pid. Its children are reaped by the kernel (SIGCHLD ignored).
import os
import signal
import socket

signal.signal(signal.SIGCHLD, signal.SIG_IGN)
server = socket.socket(fileno=3)
server.send(b"ready")
while True:
    data, fds, _, _ = socket.recv_fds(server, 16, 1)
    if not data:
        break
    pid = os.fork()
    if pid == 0:
        server.close()
        fd = fds[0]
        while True:
            b = os.read(fd, 65536)
            if not b:
                os._exit(0)
            os.write(fd, b)
    os.close(fds[0])
    server.send(str(pid).encode())

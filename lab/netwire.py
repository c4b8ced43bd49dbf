#!/usr/bin/python3
"""The delay line of a shaped lab link (see labnet.py), run by the lab inside
the link's wire namespace:

    netwire.py IF_A IF_B

Every frame arriving on IF_A leaves on IF_B after the delay, and the other
way round, in order (a constant one-way delay, like a long cable). Reads
commands on stdin, one per line:

    delay MS    set the one-way delay (the first one starts the forwarding;
                until then frames are dropped, as the kernel still carries them)

and exits at EOF (the lab closed the pipe or died). Prints READY once both
packet sockets are bound.

Frames are read and written with their virtio-net header (PACKET_VNET_HDR),
so checksum-offloaded and GSO frames from the veths pass unchanged.
"""
import collections
import os
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4
RECV_SIZE = 65536 + 128
BATCH = 256


def packet_socket(ifname):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


class Direction:
    def __init__(self, src, dst):
        self.src = src
        self.dst = dst
        self.queue = collections.deque()  # (due time, frame)
        self.last_due = 0.0

    def receive(self, delay, forwarding):
        now = time.monotonic()
        for _ in range(BATCH):
            try:
                frame, addr = self.src.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            if addr[2] == PACKET_OUTGOING or not forwarding:
                continue
            due = max(now + delay, self.last_due)  # never reorder
            self.last_due = due
            self.queue.append((due, frame))

    def send_due(self, now):
        queue = self.queue
        while queue and queue[0][0] <= now:
            frame = queue.popleft()[1]
            try:
                self.dst.send(frame)
            except OSError:
                pass  # dropped (the loss filter says ENOBUFS, a full buffer EAGAIN): a lost frame

    def next_due(self):
        return self.queue[0][0] if self.queue else None


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sock_a, sock_b = packet_socket(argv[0]), packet_socket(argv[1])
    directions = {sock_a.fileno(): Direction(sock_a, sock_b), sock_b.fileno(): Direction(sock_b, sock_a)}
    stdin = sys.stdin.fileno()
    poller = select.epoll()
    for fd in list(directions) + [stdin]:
        poller.register(fd, select.EPOLLIN)
    print("READY", flush=True)
    delay, forwarding, pending = 0.0, False, b""
    while True:
        dues = [d for d in (x.next_due() for x in directions.values()) if d is not None]
        timeout = max(0.0, min(dues) - time.monotonic()) if dues else -1
        for fd, _ in poller.poll(timeout):
            if fd == stdin:
                data = os.read(stdin, 4096)
                if not data:
                    return 0
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    words = line.decode().split()
                    if len(words) == 2 and words[0] == "delay":
                        delay, forwarding = float(words[1]) / 1000.0, True
            else:
                directions[fd].receive(delay, forwarding)
        now = time.monotonic()
        for direction in directions.values():
            direction.send_due(now)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

# shellcheck shell=bash
# Sourced by the bench scripts. `free_ports N` prints N distinct free loopback ports, one per line.
# All N sockets are held open together while the kernel picks: one port asked for at a time, as before, could be handed
# out twice (the first closed before the second was picked), and the bench stack once started its router on Redis's port.
free_ports() {
  python3 -c 'import socket,sys
socks=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1",0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

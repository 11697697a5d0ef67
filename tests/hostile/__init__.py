"""Issue 14: the server tried as a hostile client and as an operator would (real processes,
real sockets, loopback only, bounded in time and count)."""

"""How much a server asks for when it reads a request: a little first, more once a read fills it.

CPython allocates a bytes object of up to 512 bytes (33 of them its header)
from its own small-object pools and a bigger one with glibc's malloc, which
carves, shrinks and merges back a 64 KiB read buffer for 800-1,000
instructions per request (callgrind): more than the rest of a blocking
server's request. So every architecture's read of a request asks for
``FIRST_READ_BYTES``; one that comes back full is followed by bigger reads
(the blocking loop: one that does not wait; event loops: a connection's reads
grow), so a pipelining client's burst is still taken and answered whole, at
the cost of one read more.
"""

FIRST_READ_BYTES = 448

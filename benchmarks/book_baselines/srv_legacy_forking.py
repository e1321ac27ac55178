#!/usr/bin/env python3
# RECONSTRUCTION for zenserve's benchmarks, not a book file: listing 7-5
# (srv_legacy1.py, reconstructed beside this file) with ForkingMixIn in place of
# ThreadingMixIn, the swap the book's text suggests for a process per client.
# ruff: noqa  (the book's style is kept on purpose)

from socketserver import ForkingMixIn, TCPServer
import srv_legacy1, zen_utils

class ZenServer(ForkingMixIn, TCPServer):
    allow_reuse_address = 1

if __name__ == '__main__':
    address = zen_utils.parse_command_line('legacy "SocketServer" forking server')
    server = ZenServer(address, srv_legacy1.ZenHandler)
    server.serve_forever()

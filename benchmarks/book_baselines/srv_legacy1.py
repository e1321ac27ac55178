#!/usr/bin/env python3
# RECONSTRUCTION for zenserve's benchmarks, not the book's file: the course text
# (shared/seed) does not quote listing 7-5, so this is a minimal baseline written
# in the book's own style after its description of
# https://github.com/brandon-rhodes/fopnp/blob/m/py3/chapter07/srv_legacy1.py
# Uses the standard library's legacy SocketServer framework: a thread per client.
# ruff: noqa  (the book's style is kept on purpose)

from socketserver import BaseRequestHandler, TCPServer, ThreadingMixIn
import zen_utils

class ZenHandler(BaseRequestHandler):
    def handle(self):
        zen_utils.handle_conversation(self.request, self.client_address)

class ZenServer(ThreadingMixIn, TCPServer):
    allow_reuse_address = 1
    # address_family = socket.AF_INET6  # uncomment if you need IPv6

if __name__ == '__main__':
    address = zen_utils.parse_command_line('legacy "SocketServer" server')
    server = ZenServer(address, ZenHandler)
    server.serve_forever()

#!/usr/bin/env python3
# RECONSTRUCTION for zenserve's benchmarks, not the book's file: the course text
# (shared/seed) does not quote listing 7-8, so this is a minimal baseline written
# in the book's own style after its description of
# https://github.com/brandon-rhodes/fopnp/blob/m/py3/chapter07/srv_asyncio2.py
# Asynchronous I/O inside an "asyncio" event loop, with coroutines.
# Modernised as little as possible for Python 3.11, where @asyncio.coroutine
# and "yield from" coroutines are gone: "async def" and "await" instead.
# ruff: noqa  (the book's style is kept on purpose)

import asyncio, zen_utils

async def handle_conversation(reader, writer):  # the book: @asyncio.coroutine def
    address = writer.get_extra_info('peername')
    print('Accepted connection from {}'.format(address))
    while True:

        # Read the next request from the client.

        data = b''
        while not data.endswith(b'?'):
            more_data = await reader.read(4096)  # the book: yield from
            if not more_data:
                if data:
                    print('Client {} sent {!r} but then closed'
                          .format(address, data))
                else:
                    print('Client {} closed socket normally'.format(address))
                return
            data += more_data

        answer = zen_utils.get_answer(data)
        writer.write(answer)

if __name__ == '__main__':
    address = zen_utils.parse_command_line('asyncio server using coroutine')
    loop = asyncio.get_event_loop()
    coro = asyncio.start_server(handle_conversation, *address)
    server = loop.run_until_complete(coro)
    print('Listening at {}'.format(address))
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()

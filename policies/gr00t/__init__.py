"""Remote GR00T policies over Isaac-GR00T's ZMQ + msgpack protocol, and a server that puts our VLA behind it.

wire.py       msgpack with numpy arrays as .npy bytes; request, error and ping shapes (both versions)
transport.py  ZMQ REQ with a per-attempt timeout, fresh sockets on retry, PolicyError when it gives up
protocol.py   the so100_dualcam keys, the noise key (seed, chunk), the interface each version implements
n15.py        N1.5 messages (flat video.* / state.* keys) + the ``gr00t`` client policy
n16.py        N1.6 messages (nested observation, (action, info) reply) + the ``gr00t16`` client policy
client.py     the Policy protocol around a connection: chunks, units, specs like gr00t:HOST:PORT
server.py     the REP loop: endpoints, API token, error replies, request recording
serve.py      python -m policies.gr00t.serve: a VLA checkpoint behind either protocol
"""

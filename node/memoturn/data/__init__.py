"""The data surfaces over a branch's connection: KV, documents, vectors and agent memories.

Each is a set of pure ``conn -> result`` operations on reserved tables (``schema``); the node
runs them in its transactions.
"""

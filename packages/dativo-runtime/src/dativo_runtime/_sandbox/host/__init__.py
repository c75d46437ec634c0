"""The host's end of a sandboxed worker: transport, RPC client, frame pump and exit diagnosis.

Nothing a worker sends is trusted: messages are checked (:mod:`._worker_messages`), data
frames are decoded as untrusted Arrow (:mod:`._untrusted_arrow`) and what a writer leaves
in its output folder is sanitised (:mod:`._output_guard`).
"""

"""The ``cnlrn serve`` page: a Gradio app around the library that ``cnlrn infer`` runs (:mod:`.jobs`, :mod:`.app`).

Gradio is optional (``pip install -e '.[web]'``); only :mod:`.app` imports it, lazily.
"""

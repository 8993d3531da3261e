"""Captions from a base VLM and its trained adapters: batched, prompted as in training, cached.

``mirada generate`` (:mod:`vlm.generate.cli`) captions the images of a prefs split with named systems;
:func:`vlm.generate.hf.generate_batch` is the batched generator the draft stage's ``local`` backend and
later the demo reuse. Layout: ``config`` (settings), ``items`` (which images and prompts), ``keys``
(content fingerprints and cache keys), ``hf`` (batched transformers generation), ``backends``
(hf | vllm | openai), ``runner`` (cache, batches, exports), ``draft`` (the draft stage's local backend).
"""

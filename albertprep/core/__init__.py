"""The Beam-free, JAX-free core: the contracts between the stages.

Every module here imports only the standard library, NumPy, SentencePiece
and other modules of the core (Beam only lazily, inside `atomic`, for paths
of a remote filesystem), so the loader and the model can use it without
pulling in the pipelines.
"""

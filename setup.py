"""albertprep: ALBERT pretraining data from Wikipedia dumps and books.

Beam ships this file to remote workers (--setup_file), so it declares
every package and dependency the workers need.
"""

from setuptools import setup

STAGES = ("pipelines", "loaders", "model")

setup(
    name="albertprep",
    version="0.1.0",
    description="ALBERT pretraining data (Beam), deterministic loading (Grain) and Flax ALBERT",
    python_requires=">=3.10",
    # One import namespace, `albertprep`, whose three stage packages keep their
    # top-level folders: site-packages gets `albertprep` and nothing else.
    packages=["albertprep", "albertprep.core", "albertprep.tools",
              *(f"albertprep.{stage}" for stage in STAGES)],
    package_dir={"albertprep": "albertprep", **{f"albertprep.{stage}": stage for stage in STAGES}},
    install_requires=[
        "apache-beam>=2.60",
        "dask[distributed]>=2024.1",
        "mwparserfromhell>=0.6.6",
        "defusedxml>=0.7",
        "syntok>=1.4.4",
        "sentencepiece>=0.2",
        "array-record>=0.5",
        "grain>=0.2.18,<0.3",  # the loader relies on 0.2.18's sampler numbering and state layout
        "jax>=0.4.30",
        "flax>=0.10",
        "optax>=0.2.3",
        "orbax-checkpoint>=0.6",
        "tensorflow-datasets>=4.9.7",
        "safetensors>=0.4",
        "tensorboardX>=2.6",
        "matplotlib>=3.7",
        "tqdm",
        "numpy",
    ],
    extras_require={
        # torch 2.13.0 is pinned: the CPU build this project tests against (the model's
        # parity test runs transformers' AlbertForPreTraining as the reference)
        "test": ["pytest>=8", "pytest-timeout", "ruff==0.17.6", "torch==2.13.0", "transformers>=4.40"],
        # benchmarks/sentences.py compares pysbd and blingfire with syntok; benchmarks/extract.py runs
        # wikiextractor 3.1.0 (the extractor of NVIDIA's BERT recipe and LDDL) on the same dump
        "bench": ["pysbd", "blingfire", "wikiextractor==3.1.0"],
    },
    entry_points={"console_scripts": ["albertprep=albertprep.launch:main"]},
)

"""albertprep: ALBERT pretraining data from Wikipedia dumps and books, and ALBERT trained on it.

One namespace, layered so that data and imports flow one way:

- `albertprep.core`: what the stages hand each other (documents, tokenizer,
  record codec and masking, manifest, workdir layout, atomic files,
  checksums, protobuf wire format). Imports no stage, no Beam, no JAX.
- `albertprep.pipelines` (folder `pipelines/`): the Beam jobs (corpus
  stage, vocabulary, instance stage). Uses only the core.
- `albertprep.loaders` (folder `loaders/`): Grain loading of prepared data.
  Uses only the core.
- `albertprep.model` (folder `model/`): Flax ALBERT and pretraining. Uses
  the core and the loader.
- `albertprep.tools` and `albertprep.cli`: inspection, TFRecord export, the
  demo corpus and the command line, on top of everything.

`tests/test_layers.py` holds the code to these rules.
"""

__version__ = "0.1.0"

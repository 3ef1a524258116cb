"""Tools on top of the stages: `inspect`, the TFRecord export and the demo corpus."""

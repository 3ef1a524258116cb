"""The files of a prepared directory, named once for the writer and the readers.

No Beam here: the loader imports it.
"""

MANIFEST = "manifest.json"
COMPLETED = "COMPLETED"  # written last: its presence means the directory is whole
SPM_MODEL = "spm.model"
MANIFEST_FORMAT = "albertprep.instances"
SPLITS = ("train", "eval")

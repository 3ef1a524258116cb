"""Unpacks the demo corpus from gensim's wheel, a package on PyPI.

gensim ships a real 2016 English Wikipedia dump sample (206 pages) as test
data. We take that one file out of the downloaded wheel; gensim itself is
not installed. Usage: python -m pipelines.demo_data WHEEL_DIR DATA_DIR
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import zipfile

MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TARGET = "enwiki-sample.xml.bz2"


def main(wheel_dir: str, data_dir: str) -> None:
    wheels = glob.glob(os.path.join(wheel_dir, "gensim-*.whl"))
    if not wheels:
        sys.exit(f"no gensim wheel in {wheel_dir}")
    os.makedirs(data_dir, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as source:
        with open(os.path.join(data_dir, TARGET), "wb") as target:
            shutil.copyfileobj(source, target)
    print(f"demo corpus: {os.path.join(data_dir, TARGET)} (from {os.path.basename(wheels[0])})")


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Unpacks the demo corpus from gensim's wheel, a package on PyPI.

gensim ships a real 2016 English Wikipedia dump sample (206 pages) as test
data. We take that one file out of the downloaded wheel (gensim itself is
not installed) and recompress it as a multistream dump with its index, as
Wikimedia publishes English Wikipedia, so the demo's workers split it.
Usage: python -m albertprep.tools.demo_data WHEEL_DIR DATA_DIR
"""

from __future__ import annotations

import bz2
import glob
import os
import sys
import zipfile

from albertprep.pipelines import mediawiki

MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TARGET = "enwiki-20160101-pages-articles-multistream.xml.bz2"
INDEX = "enwiki-20160101-pages-articles-multistream-index.txt.bz2"


def main(wheel_dir: str, data_dir: str) -> None:
    wheels = glob.glob(os.path.join(wheel_dir, "gensim-*.whl"))
    if not wheels:
        sys.exit(f"no gensim wheel in {wheel_dir}")
    os.makedirs(data_dir, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as member, bz2.open(member) as dump:
        with open(os.path.join(data_dir, TARGET), "wb") as target, open(os.path.join(data_dir, INDEX), "wb") as index:
            streams = mediawiki.write_multistream(dump, target, index, pages_per_stream=10)
    print(f"demo corpus: {os.path.join(data_dir, TARGET)}, {streams} streams (from {os.path.basename(wheels[0])})")


if __name__ == "__main__":
    main(*sys.argv[1:3])

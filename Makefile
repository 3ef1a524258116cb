# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-output

.PHONY: install demo test test-all lint bench clean

$(BIN)/albertprep: setup.py .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]' -c .ci/constraints.txt
	touch $@

install: $(BIN)/albertprep

# The demo corpus is the English Wikipedia sample that gensim's wheel ships
# (PyPI); only that one file is unpacked, gensim is not installed, and it is
# recompressed as a multistream dump so the two workers split it.
DEMO_DUMP := $(DEMO)/data/enwiki-20160101-pages-articles-multistream.xml.bz2

$(DEMO_DUMP): | install
	mkdir -p $(DEMO)/data $(DEMO)/wheel
	$(BIN)/pip download --quiet --no-deps --dest $(DEMO)/wheel gensim==4.4.0
	$(BIN)/python -m albertprep.tools.demo_data $(DEMO)/wheel $(DEMO)/data

demo: install $(DEMO_DUMP)
	$(BIN)/albertprep extract $(DEMO)/data --output $(DEMO)/documents --workers 2 --split-mb 0.2 --overwrite
	$(BIN)/albertprep show $(DEMO)/documents
	$(BIN)/albertprep dedup $(DEMO)/documents --output $(DEMO)/deduplicated --workers 2 --overwrite
	$(BIN)/albertprep prepare $(DEMO)/deduplicated --output $(DEMO)/prepared --workers 2 --split-mb 1 \
		--vocab-size 8000 --max-seq-length 128 --dupe-factor 5 --eval-fraction 0.05 --num-shards 4 --overwrite
	$(BIN)/albertprep inspect $(DEMO)/prepared -n 2
	rm -rf $(DEMO)/pretrain
	$(BIN)/albertprep pretrain --config mini --data $(DEMO)/prepared --workdir $(DEMO)/pretrain \
		--steps 1000 --batch-size 32 --learning-rate 5e-3 --warmup-steps 100 --dtype float32 \
		--eval-every 200 --eval-batches 20 --checkpoint-every 500 --log-every 20
	$(BIN)/albertprep report --data $(DEMO)/prepared --workdir $(DEMO)/pretrain --output $(DEMO)/report.md
	$(BIN)/albertprep convert $(DEMO)/pretrain --output $(DEMO)/model

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

test-all: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python benchmarks/learning.py  # after make demo
	$(BIN)/python benchmarks/sentences.py
	$(BIN)/python benchmarks/templates.py
	$(BIN)/python benchmarks/extract.py
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/scale.py  # about half an hour: 1 GB through the chain on Dask and the local runner

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info

# One command per check, the same for people and CI.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch with a torchvision that imports beside it (pty-chi needs one); a CUDA build that also
# runs on the CPU. Override on other hosts, e.g.
# make setup TORCH_SPEC="torch==2.14.1 torchvision==0.29.1 --index-url <your CUDA index>"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# pty-chi without its declared dependencies: they would replace torch; what it imports is
# pinned in requirements.txt.
PTYCHI_SPEC ?= ptychi==2.2.0
STAMP := $(VENV)/.installed

.PHONY: setup lint typecheck test demo serve bench clean

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps $(PTYCHI_SPEC)
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check app worker tests bench
	$(BIN)/ruff format --check app worker tests bench
	$(BIN)/mypy app worker

test: lint
	$(BIN)/pytest

# e.g. make demo DEMO_ARGS="--keep" (the dashboard stays up) or DEMO_ARGS="--use-settings"
DEMO_ARGS ?=
demo: setup
	$(BIN)/ptychojobs demo $(DEMO_ARGS)

serve: setup
	$(BIN)/ptychojobs serve --with-worker

bench: setup
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/learning.py $(LEARNING_ARGS)
	$(BIN)/python bench/reconstruct_bare.py
	$(BIN)/python bench/reconstruct.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/queue_throughput.py
	$(BIN)/python bench/dispatch.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

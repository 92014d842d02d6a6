# Two commands do all the set-up on a fresh machine:
#   make demo   the whole pipeline on the embedded synthetic default, ending with both results tables
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= runs/demo
# A preset is a folder of YAML overrides on top of each script's defaults in configs/:
# `make paper` (= `make demo PRESET=paper`) runs the paper's scale on one GPU with configs/paper/.
PRESET ?= demo
preset  = $(if $(wildcard configs/$(PRESET)/$(1).yaml),config=configs/$(PRESET)/$(1).yaml)

.PHONY: demo paper test bench clean-demo

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

demo: $(VENV)/.installed
	$(PY) synth.py          $(call preset,synth_pretrain) kind=pretrain out=$(OUT)/synth/pretrain
	$(PY) synth.py          $(call preset,synth_task_a) kind=task_a out=$(OUT)/synth/task_a
	$(PY) synth.py          $(call preset,synth_task_b) kind=task_b out=$(OUT)/synth/task_b
	$(PY) ingest.py        src=$(OUT)/synth/pretrain/openface out=$(OUT)/corpus/pretrain
	$(PY) ingest.py        src=$(OUT)/synth/task_a/openface   out=$(OUT)/corpus/task_a
	$(PY) ingest.py        src=$(OUT)/synth/task_b/openface   out=$(OUT)/corpus/task_b
	$(PY) cluster.py      $(call preset,cluster) corpus=$(OUT)/corpus/pretrain out=$(OUT)/vocab
	$(PY) cluster.py      corpus=$(OUT)/corpus/task_a vocab=$(OUT)/vocab out=$(OUT)/tokens/task_a
	$(PY) cluster.py      corpus=$(OUT)/corpus/task_b vocab=$(OUT)/vocab out=$(OUT)/tokens/task_b
	$(PY) embed.py        $(call preset,embed) tokens=$(OUT)/vocab out=$(OUT)/embed \
	                      report.synth=$(OUT)/synth/pretrain report.corpus=$(OUT)/corpus/pretrain
	$(PY) train.py        sweep=$(firstword $(wildcard configs/$(PRESET)/sweep.yaml) configs/sweep.yaml) root=$(OUT)
	@echo; echo "TensorBoard: $(PY) -m tensorboard.main --logdir $(OUT)"

paper:
	$(MAKE) demo PRESET=paper OUT=runs/paper

# the CPU benchmarks of BENCHMARKS.md (the demo sweep's timing needs `make demo` first)
bench: $(VENV)/.installed
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_kmeans.py
	$(PY) bench/bench_embed.py
	$(PY) bench/bench_glove.py --threads 2
	$(PY) bench/bench_distributed.py
	$(PY) bench/bench_train.py demo --root $(OUT)

clean-demo:
	rm -rf $(OUT)

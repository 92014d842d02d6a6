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

.PHONY: demo paper test bench clean-demo faces au-nets gpu-check gpu-wheels

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
	$(PY) au_nets.py      $(call preset,au_nets) methods=[face_features] root=$(OUT)
	$(PY) train.py        sweep=$(firstword $(wildcard configs/$(PRESET)/sweep.yaml) configs/sweep.yaml) root=$(OUT)
	@echo; echo "TensorBoard: $(PY) -m tensorboard.main --logdir $(OUT)"

paper:
	$(MAKE) demo PRESET=paper OUT=runs/paper

# Chu et al.'s CNN + LSTM + fusion and GTLE-Net (with its pretraining ablations) on rendered faces:
# F1 tables in $(OUT)/au_nets/results.md (PRESET=paper: the papers' networks and sizes, on a GPU)
au-nets: $(VENV)/.installed
	$(PY) au_nets.py      $(call preset,au_nets) root=$(OUT)

# the CPU benchmarks of BENCHMARKS.md (the demo sweep's timing needs `make demo` first)
bench: $(VENV)/.installed
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_kmeans.py
	$(PY) bench/bench_embed.py
	$(PY) bench/bench_glove.py --threads 2
	$(PY) bench/bench_distributed.py
	$(PY) bench/bench_train.py demo --root $(OUT)

# The prepared GPU check (bench/gpu_check.py): every owed GPU figure in under 8 minutes on one H200,
# written to GPU_OUT/gpu_check.json and gpu_check.md. It runs with the machine's own python3 (no
# .venv there) and installs pykeops, keopscore and omegaconf first from the wheels in .whl/ when they
# do not import: make them with `make gpu-wheels` where pip reaches PyPI (pykeops and keopscore are
# pure Python and ship as source, so they are built into wheels here; omegaconf ships one). Never commit .whl/.
# `python bench/gpu_check.py DIR --cpu-tiny` is the same check at tiny sizes on the CPU (part of `make test`).
GPU_OUT ?= runs/gpu_check
gpu-check:
	$(PYTHON) bench/gpu_check.py $(GPU_OUT)

gpu-wheels:
	mkdir -p .whl
	$(PYTHON) -m pip wheel -q --no-deps -w .whl pykeops==2.3 keopscore==2.3
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl omegaconf==2.4.0

clean-demo:
	rm -rf $(OUT)

# the face stage (Fung & McDuff) on rendered faces: renderer, noisy pretraining, fine-tuning, F1 tables
# (under 15 minutes on 2 CPU cores; `make faces PRESET=paper` for the paper's sizes on a GPU)
faces: $(VENV)/.installed
	$(PY) faces.py $(call preset,faces) out=$(OUT)/faces

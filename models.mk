# models.mk - `make model`: rebuild models/default.mote and models/MODEL_CARD.md from
# public-domain text that the package registries ship (included by the top-level Makefile).
#
#   make corpus-deps   install the Debian packages the corpus is read from (root)
#   make model         corpus -> mote train (CPU, 1 thread) -> mote convert -> card
#   make model-sparse  the same corpus, shape and budget trained sparse (ReLU, L1, drops in the
#                      loop) -> $(MODEL_BUILD)/sparse.mote; issue 12's candidate, which missed its
#                      qemu-m4 target, so it does not replace the default (README, "Dynamic
#                      activation sparsity")
#
# Every setting that shapes the model is here, so the same inputs give the same blob:
# one torch thread makes training bit-reproducible on a given machine kind.

PYTHON ?= python3
MODEL_BUILD ?= build/model
MODEL_STEPS ?= 2400
MODEL_SEED ?= 1
MODEL_QUANT ?= int8
MODEL_SHAPE ?= --dim 128 --layers 4 --heads 4 --kv-heads 2 --hidden 352 --vocab 1024 --ctx 256
MODEL_ACT ?= --act silu
MODEL_SPARSE ?= --act relu --l1 1e-3,3e-3,1e-2 --drop gate=0.9,ffn_in=0.5,attn_in=0.5,attn_out=0.5
MODEL_LICENSE ?= public domain (Shakespeare's plays, KJV and World English Bible texts)
MODEL_TRAIN = $(PYTHON) -m mote train --text $(MODEL_BUILD)/corpus $(MODEL_SHAPE) --steps $(MODEL_STEPS) \
  --seed $(MODEL_SEED) --threads 1 --data-license "$(MODEL_LICENSE)"

.PHONY: model model-sparse model-corpus corpus-deps

corpus-deps:
	apt-get update && apt-get install -y bible-kjv sword-text-web libsword-utils
	$(PYTHON) -m pip install 'torch==2.13.0'

model-corpus:
	@command -v bible >/dev/null && command -v mod2imp >/dev/null || \
	  { echo "make model: run 'make corpus-deps' first (Debian bible-kjv, sword-text-web, libsword-utils)"; exit 2; }
	$(PYTHON) -m mote corpus build $(MODEL_BUILD)/cache $(MODEL_BUILD)/corpus

model: model-corpus
	rm -rf $(MODEL_BUILD)/mote-default
	$(MODEL_TRAIN) -o $(MODEL_BUILD)/mote-default $(MODEL_ACT)
	$(PYTHON) -m mote convert $(MODEL_BUILD)/mote-default -o models/default.mote --quant $(MODEL_QUANT) --board qemu-m4
	$(PYTHON) -m mote corpus card $(MODEL_BUILD) models/default.mote -o models/MODEL_CARD.md

model-sparse: model-corpus
	rm -rf $(MODEL_BUILD)/mote-sparse
	$(MODEL_TRAIN) -o $(MODEL_BUILD)/mote-sparse $(MODEL_SPARSE)
	$(PYTHON) -m mote convert $(MODEL_BUILD)/mote-sparse -o $(MODEL_BUILD)/sparse.mote --quant int8 \
	  --sparsity trained --board qemu-m4

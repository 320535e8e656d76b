# models.mk - `make model`: rebuild models/default.mote and models/MODEL_CARD.md from
# public-domain text that the package registries ship (included by the top-level Makefile).
#
#   make corpus-deps   install the Debian packages the corpus is read from (root)
#   make model         corpus -> mote train (CPU, 1 thread) -> mote convert -> card
#
# Every setting that shapes the model is here, so the same inputs give the same blob:
# one torch thread makes training bit-reproducible on a given machine kind.

PYTHON ?= python3
MODEL_BUILD ?= build/model
MODEL_STEPS ?= 2400
MODEL_SEED ?= 1
MODEL_QUANT ?= int8
MODEL_SHAPE ?= --dim 128 --layers 4 --heads 4 --kv-heads 2 --hidden 352 --vocab 1024 --ctx 256 --act silu
MODEL_LICENSE ?= public domain (Shakespeare's plays, KJV and World English Bible texts)

.PHONY: model corpus-deps

corpus-deps:
	apt-get update && apt-get install -y bible-kjv sword-text-web libsword-utils
	$(PYTHON) -m pip install 'torch==2.13.0'

model:
	@command -v bible >/dev/null && command -v mod2imp >/dev/null || \
	  { echo "make model: run 'make corpus-deps' first (Debian bible-kjv, sword-text-web, libsword-utils)"; exit 2; }
	$(PYTHON) -m mote corpus build $(MODEL_BUILD)/cache $(MODEL_BUILD)/corpus
	rm -rf $(MODEL_BUILD)/mote-default
	$(PYTHON) -m mote train --text $(MODEL_BUILD)/corpus -o $(MODEL_BUILD)/mote-default $(MODEL_SHAPE) \
	  --steps $(MODEL_STEPS) --seed $(MODEL_SEED) --threads 1 --data-license "$(MODEL_LICENSE)"
	$(PYTHON) -m mote convert $(MODEL_BUILD)/mote-default -o models/default.mote --quant $(MODEL_QUANT) --board qemu-m4
	$(PYTHON) -m mote corpus card $(MODEL_BUILD) models/default.mote -o models/MODEL_CARD.md

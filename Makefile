# Set-up, demo and tests. `make demo` and `make test` each do the whole set-up first.

PYTHON := .venv/bin/python
# torch 2.13.0 is pinned here rather than in pyproject.toml (which asks for torch>=2.1): on the
# machines this project runs on it is a CPU build that pip finds on disk, while any other version
# downloads gigabytes of CUDA packages. Override for a GPU machine: make test TORCH=torch==2.x.
TORCH ?= torch==2.13.0
# EGL loader and Mesa's drivers (llvmpipe: OpenGL with no GPU); xvfb for the window tests;
# a C++ compiler and Python's headers for the CPU kernels, which torch builds on first use.
SYSTEM_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri xvfb g++ python3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_ARGS ?=

.PHONY: setup system-packages demo docs-images test clean

setup: system-packages .venv/.installed

system-packages:
	@if ! command -v dpkg >/dev/null; then \
		echo "not Debian/Ubuntu: install EGL and Mesa (or your GPU's EGL driver) yourself"; exit 0; fi; \
	missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -c "import venv, ensurepip" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# The stamp makes repeated runs fast; it is redone when pyproject.toml changes.
.venv/.installed: pyproject.toml | system-packages
	[ -x $(PYTHON) ] || python3 -m venv .venv || { rm -rf .venv; exit 1; }
	$(PYTHON) -m pip install -q '$(TORCH)'
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(PYTHON) demos/render_spot.py $(DEMO_ARGS)

# The README's pictures: small renders, committed under docs/images/.
docs-images: setup
	$(PYTHON) demos/render_spot.py --out docs/images --size 256
	$(PYTHON) demos/gradient_image.py --out docs/images/gradient.png

test: setup
	$(PYTHON) -m pytest -q

clean:
	rm -rf .venv out .pytest_cache

# Benchmarks (issue 5): prints a markdown table and writes benchmarks/results.md.
# make bench BENCH_ARGS="--quick" for a small grid; --help lists the options.
BENCH_ARGS ?=
.PHONY: bench
bench: setup
	$(PYTHON) benchmarks/bench.py $(BENCH_ARGS)

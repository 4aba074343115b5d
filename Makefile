# Front door: `make` builds, `make test` installs what is missing, builds and runs the whole suite
# (plain and ASan+UBSan) through CTest.
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build deps test clean format

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

format:
	clang-format -i include/*.h $$(find src tools tests bench -name '*.[ch]')

clean:
	rm -rf $(BUILD_DIR)

# Builds the benchmark's tools outside the autotools build (they are not
# part of `make check`):
#   make -f tests/bench/bench.mk -C tests/bench OUT=DIR
# (run.sh and profile.sh do this into their work directory).
OUT ?= .
CC ?= cc
CFLAGS ?= -O2 -g -Wall -Wextra

all: $(OUT)/loadgen $(OUT)/nodelay_shim.so

$(OUT)/loadgen: loadgen.c
	$(CC) $(CFLAGS) -o $@ loadgen.c -lssl -lcrypto

$(OUT)/nodelay_shim.so: nodelay_shim.c
	$(CC) $(CFLAGS) -shared -fPIC -o $@ nodelay_shim.c -ldl

.PHONY: all

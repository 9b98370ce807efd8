# Builds the benchmark's tools outside the autotools build (they are not
# part of `make check`):
#   make -C tests/bench -f bench.mk OUT=DIR
# (run.sh and profile.sh do this into their work directory).
OUT ?= .
CC ?= cc
CFLAGS ?= -O2 -g -Wall -Wextra

all: $(OUT)/loadgen $(OUT)/nodelay_shim.so $(OUT)/tls_floor

$(OUT)/loadgen: loadgen.c
	$(CC) $(CFLAGS) -o $@ loadgen.c -lssl -lcrypto

$(OUT)/tls_floor: tls_floor.c
	$(CC) $(CFLAGS) -o $@ tls_floor.c -lssl -lcrypto

$(OUT)/nodelay_shim.so: nodelay_shim.c
	$(CC) $(CFLAGS) -shared -fPIC -o $@ nodelay_shim.c -ldl

.PHONY: all

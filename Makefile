# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
PY       := .venv/bin/python
VENV_OK  := .venv/.installed
MODELS_OK:= var/models/.installed
XVFB     := xvfb-run -a -s "-screen 0 1280x800x24"

.PHONY: setup models demo test run lint clean-var ui-audit

setup: $(VENV_OK) $(MODELS_OK)

$(VENV_OK): pyproject.toml requirements.lock scripts/setup.sh
	scripts/setup.sh
	touch $@

$(MODELS_OK): $(VENV_OK) config/models.toml
	$(PY) main.py models install --all
	touch $@

models: $(MODELS_OK)

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

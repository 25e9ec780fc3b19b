# Two commands matter: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
HOST   ?= 127.0.0.1:8000
# pytest-xdist workers; CI and a 2-core machine use 2.
WORKERS ?= 2

.PHONY: run test install install-dev migrate seed lint format messages clean audit-deps check-deploy

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --no-input

seed: migrate
	$(PY) manage.py seed_demo
	$(PY) manage.py ensure_admin

## make run: embedded default (SQLite in var/, eager tasks), demo data, admin on $(HOST)
run: seed
	$(PY) manage.py runserver $(HOST)

## make test: the whole suite (PostgreSQL when DATABASE_URL is set, else SQLite)
test: install-dev
	$(VENV)/bin/pytest -n $(WORKERS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(MAKE) --no-print-directory check-deploy
	$(MAKE) --no-print-directory audit-deps

## make audit-deps: known vulnerabilities in the installed pinned dependencies (pip-audit; needs
## PyPI's JSON API — says "NOT AUDITED" and passes when unreachable, AUDIT_DEPS_REQUIRE=1 fails)
audit-deps: install-dev
	$(PY) tools/audit_deps.py $(if $(AUDIT_DEPS_REQUIRE),--require)

## make check-deploy: `check --deploy` on production settings with throw-away secrets
KEY32 = $$($(PY) -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
check-deploy: install
	env DJANGO_ENV=production \
	  DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	  DJANGO_ALLOWED_HOSTS=fapiao.example.gov.cn \
	  DATABASE_URL=postgres://check@127.0.0.1:5432/check_deploy_unused \
	  REDIS_URL=redis://127.0.0.1:6379/15 \
	  FIELD_ENCRYPTION_KEYS="1:aes-256-gcm:$(KEY32)" BLIND_INDEX_KEYS="$(KEY32)" \
	  AUDIT_HMAC_KEY="$(KEY32)" \
	  $(PY) manage.py check --deploy --fail-level WARNING

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

messages: install-dev
	$(PY) manage.py makemessages -l zh_Hans -l en --ignore=.venv --ignore=var
	$(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

"""Settings for lotteryinvoice, read from the environment (django-environ).

Three ways to run, chosen by `DJANGO_ENV`:

- unset / `development`: the embedded default. With no environment at all the project runs on
  SQLite under `var/`, Celery tasks run eagerly, the cache is local memory, SMS and e-mail go to
  the console, and keys are generated once into `var/keys.json`. `DATABASE_URL` switches to
  PostgreSQL and `REDIS_URL` to Redis (cache and Celery broker).
- `production`: refuses to start unless every secret and key is given explicitly, and is built to
  pass `manage.py check --deploy --fail-level WARNING`.

Every variable is listed, with its meaning, in `.env.example`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from csp import constants as csp_constants
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from import_export.formats.base_formats import CSV, XLSX

from .embedded import load_or_create_keys

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("LOTTERYINVOICE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(
        f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}."
    )
PRODUCTION = DJANGO_ENV == "production"

# Secrets that production must receive explicitly; the embedded default generates them.
PRODUCTION_REQUIRED = (
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "FIELD_ENCRYPTION_KEYS",
    "BLIND_INDEX_KEYS",
    "AUDIT_HMAC_KEY",
)
if PRODUCTION:
    missing = [name for name in PRODUCTION_REQUIRED if not env.str(name, default="")]
    if missing:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production refuses to start without explicit secrets. "
            f"Set these environment variables: {', '.join(missing)} (see .env.example)."
        )
    _embedded: dict[str, str] = {}
else:
    _embedded = load_or_create_keys(VAR_DIR)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _embedded["secret_key"]
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Personal-data encryption (apps.common.crypto). Format: "1:aes-256-gcm:<base64>;2:sm4-gcm:<b64>".
FIELD_ENCRYPTION_KEYS = (
    env.str("FIELD_ENCRYPTION_KEYS", default="") or _embedded["field_encryption_keys"]
)
# The version new writes use; defaults to the highest configured version.
FIELD_ENCRYPTION_ACTIVE_VERSION = env.int("FIELD_ENCRYPTION_ACTIVE_VERSION", default=0) or None
# HMAC keys for blind indexes, newest first, comma separated base64.
BLIND_INDEX_KEYS = env.str("BLIND_INDEX_KEYS", default="") or _embedded["blind_index_keys"]
AUDIT_HMAC_KEY = env.str("AUDIT_HMAC_KEY", default="") or _embedded["audit_hmac_key"]
# Consumers inactive this long lose their personal data (money records stay, pseudonymous).
PERSONAL_DATA_RETENTION_DAYS = env.int("PERSONAL_DATA_RETENTION_DAYS", default=3 * 365)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Redoc served from our static files, never a CDN
    "django_celery_beat",
    "import_export",
    "csp",
    # Sign-in: allauth (staff log-in with mandatory TOTP; consumers' app API with SMS codes
    # through allauth headless; the city app's OpenID Connect), django-axes (lockout).
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.headless",
    "apps.accounts.axes_app.AxesConfig",  # django-axes, named and translated
    "apps.common",
    "apps.audit",
    "apps.accounts",
    "apps.merchants",
    "apps.invoices",
    "apps.draws",
    "apps.prizes",
    "apps.complaints",
    "apps.content",
    "apps.risk",
    "apps.reporting",
    "apps.monitoring",
]

MIDDLEWARE = [
    # An id for every request (X-Request-ID in and out, in every log line and queued task), then
    # the health probes, answered before sessions, sign-in, HTTPS redirect or host checks.
    "apps.common.middleware.RequestIdMiddleware",
    "apps.common.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "apps.audit.middleware.AuditContextMiddleware",
    # Blocked sources and suspended keys refused; 403/404s and API use counted (apps.monitoring).
    "apps.monitoring.middleware.MonitoringMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Idle/absolute session limits and the inactive-user guard, then the staff second factor,
    # then the forced change of an expired staff password (apps.accounts.middleware).
    "apps.accounts.middleware.SessionSecurityMiddleware",
    "apps.accounts.middleware.StaffMFAMiddleware",
    "apps.accounts.middleware.PasswordExpiryMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "apps.common.middleware.NoStoreMiddleware",
    # Last, as django-axes requires: turns a lockout into the ordinary failed-login answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "lotteryinvoice.urls"
WSGI_APPLICATION = "lotteryinvoice.wsgi.application"
ASGI_APPLICATION = "lotteryinvoice.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# Database: PostgreSQL when DATABASE_URL is set, otherwise SQLite under var/.
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with small batches inserted without arrays (lotteryinvoice/db/).
        DATABASES["default"]["ENGINE"] = "lotteryinvoice.db.postgresql"
        if env.bool("DATABASE_POOL", default=PRODUCTION):
            # psycopg 3 connection pool (Django >= 5.1); persistent connections must be off.
            DATABASES["default"]["OPTIONS"] = {
                "pool": {
                    "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
                    "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
                    "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
                }
            }
            DATABASES["default"]["CONN_MAX_AGE"] = 0
        else:
            DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
            DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        # Parameters bound by the server and statements prepared once a connection has run
        # them `DATABASE_PREPARE_THRESHOLD` times: planning the submission path's statements
        # cost PostgreSQL more than running them (docs/benchmarks.md, issue 11). Off with
        # PgBouncer in transaction mode (prepared statements belong to one connection).
        if env.bool("DATABASE_SERVER_SIDE_BINDING", default=True):
            DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
            DATABASES["default"]["OPTIONS"]["prepare_threshold"] = env.int(
                "DATABASE_PREPARE_THRESHOLD", default=5
            )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "lotteryinvoice.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
# The lockout backend must come first: it refuses locked-out logins before any password check.
AUTHENTICATION_BACKENDS = [
    "apps.accounts.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {
        "NAME": "apps.accounts.password_validation.CharacterClassesValidator",
        "OPTIONS": {"min_classes": 3},
    },
    # Also records every new password hash (its `password_changed` hook), see the module.
    {
        "NAME": "apps.accounts.password_validation.PasswordHistoryValidator",
        "OPTIONS": {"count": 5},
    },
]
# Staff passwords older than this must be changed before anything else (PasswordExpiryMiddleware).
PASSWORD_EXPIRY_DAYS = 90

# Internationalisation: Chinese first, English second.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Admin import/export (django-import-export; apps.common.import_export). CSV and XLSX only.
# Import needs the model's add (and change) permission, export its view permission; exports
# mask personal data without accounts.reveal_personal_data and are audited. The audit trail is
# the record of imported changes (services write it), so no second copy in the admin log.
IMPORT_EXPORT_FORMATS = [CSV, XLSX]
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_SKIP_ADMIN_LOG = True
IMPORT_EXPORT_CHUNK_SIZE = 2000  # rows per query of an export's iterator
IMPORT_EXPORT_IMPORT_IGNORE_BLANK_LINES = True

# The admin lives at a configurable path, so it is not where scanners look first.
ADMIN_URL = env.str("DJANGO_ADMIN_URL", default="admin/")
if not ADMIN_URL.endswith("/") or ADMIN_URL.startswith("/"):
    raise ImproperlyConfigured("DJANGO_ADMIN_URL must look like 'path/' (no leading slash).")

# Cache and Celery: Redis when REDIS_URL is set, otherwise local memory and eager tasks.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="lotteryinvoice"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
# Workers log through LOGGING below (JSON lines with request and task ids), not Celery's format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3300)
# Redis redelivers an unacknowledged (acks_late) task after the visibility timeout: it must
# outlast the hard time limit, or a long task would be started a second time while it runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 900}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# E-mail: console by default, a real backend by environment.
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="noreply@lotteryinvoice.local")

# Abnormal-behaviour monitoring (apps.monitoring, docs/monitoring.md): alert e-mails go to the
# security administrators plus these addresses; the outbound webhook is HMAC-signed.
MONITORING_ALERT_EMAILS = env.list("MONITORING_ALERT_EMAILS", default=[])
MONITORING_WEBHOOK_URL = env.str("MONITORING_WEBHOOK_URL", default="")
MONITORING_WEBHOOK_SECRET = env.str("MONITORING_WEBHOOK_SECRET", default="")
MONITORING_WEBHOOK_TIMEOUT = env.float("MONITORING_WEBHOOK_TIMEOUT", default=5.0)

# REST API: authenticated by default, never AllowAny.
REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The consumer app: allauth's session token in the X-Session-Token header (first, so that
    # "not signed in" is a 401); the back office: its session cookie (with CSRF).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.api.authentication.ConsumerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "apps.common.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "apps.common.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "TITLE": "lotteryinvoice API",
    "DESCRIPTION": "有奖发票 prize-invoice campaign platform: consumer and partner API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Fields named "status" exist with several choice sets: name each explicitly.
    "ENUM_NAME_OVERRIDES": {
        "ConsumerStatusEnum": "apps.accounts.choices.ConsumerStatus",
        "InvoiceStatusEnum": "apps.invoices.choices.InvoiceStatus",
        "VerificationStatusEnum": "apps.accounts.choices.VerificationStatus",
        "AwardKindEnum": "apps.prizes.choices.AwardKind",
        "AwardStatusEnum": "apps.prizes.choices.AwardStatus",
        "CouponStatusEnum": "apps.prizes.choices.CouponStatus",
        "PayoutAccountKindEnum": "apps.prizes.choices.PayoutAccountKind",
        "PayoutAccountStatusEnum": "apps.prizes.choices.PayoutAccountStatus",
        "PayoutStatusEnum": "apps.prizes.choices.PayoutStatus",
        "ArticleKindEnum": "apps.content.choices.ArticleKind",
    },
}

# Request size limits: invoices are small; uploads go through dedicated views.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Content Security Policy (django-csp): scripts only from us or with the per-request nonce.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp_constants.SELF],
        "script-src": [csp_constants.SELF, csp_constants.NONCE],
        # The admin and allauth templates use a few inline style attributes.
        "style-src": [csp_constants.SELF, csp_constants.UNSAFE_INLINE],
        "img-src": [csp_constants.SELF, "data:"],
        "font-src": [csp_constants.SELF],
        "connect-src": [csp_constants.SELF],
        "object-src": [csp_constants.NONE],
        "base-uri": [csp_constants.NONE],
        "form-action": [csp_constants.SELF],
        "frame-ancestors": [csp_constants.NONE],
    }
}

# How many reverse proxies (nginx …) sit in front: their X-Forwarded-For entries are trusted.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# Sessions and cookies. With Redis, sessions are read from a cached copy (the database stays
# the record; apps/accounts/session_store.py); per-process memory could not see a revocation
# made in another worker, so without Redis they are read from the database.
SESSION_ENGINE = (
    "apps.accounts.session_store" if REDIS_URL else "django.contrib.sessions.backends.db"
)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# A session is ended server-side 15 minutes after its last request and, whatever the activity,
# this long after sign-in (SessionSecurityMiddleware); the session store's own expiry is the
# same age, and the cookie lasts only as long as the browser session.
SESSION_IDLE_TIMEOUT_SECONDS = 15 * 60
SESSION_ABSOLUTE_TIMEOUT_SECONDS = SESSION_COOKIE_AGE
if SESSION_IDLE_TIMEOUT_SECONDS >= SESSION_ABSOLUTE_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("SESSION_COOKIE_AGE must be longer than the 15-minute idle limit.")

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Sign-in (django-allauth): one login flow for the whole back office, the admin's included.
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "admin:index"
LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_ADAPTER = "apps.accounts.adapters.AccountAdapter"
# Staff sign in by username (browser pages), consumers by phone (the app API, SMS code). The
# browser form stays a plain username field (StaffLoginForm).
ACCOUNT_LOGIN_METHODS = {"username", "phone"}
ACCOUNT_FORMS = {"login": "apps.accounts.forms.StaffLoginForm"}
# Sign-up is closed (adapter): staff are created by the administrator, consumers by their first
# confirmed SMS code. No "phone*" here: a required phone would stop every staff login (staff have
# no phone) at allauth's phone-verification stage.
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"  # staff accounts are created by the system administrator
ACCOUNT_PREVENT_ENUMERATION = True  # a code request never tells whether a phone has an account
# Consumers: sign-in by a 6-digit SMS code, valid 5 minutes, 5 tries, then a new code is needed.
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_LOGIN_BY_CODE_REQUIRED = False  # staff use password + TOTP, not codes
ACCOUNT_LOGIN_BY_CODE_TIMEOUT = 5 * 60
ACCOUNT_LOGIN_BY_CODE_MAX_ATTEMPTS = 5
ACCOUNT_LOGIN_BY_CODE_SUPPORTS_RESEND = False  # a new code is a new (rate-limited) request
ACCOUNT_PHONE_VERIFICATION_ENABLED = True
ACCOUNT_PHONE_VERIFICATION_CODE_FORMAT = {"numeric": True, "length": 6, "dashed": False}
ACCOUNT_PHONE_VERIFICATION_TIMEOUT = 5 * 60
ACCOUNT_PHONE_VERIFICATION_MAX_ATTEMPTS = 5
# allauth's rate limits ("N/period/ip|key|user", checked in order, each one counting the
# request once it passes, so the address comes first: a request refused for its address does not
# use up the phone's allowance). Codes: per client address 30 in 10 minutes (mobile carriers put
# many people behind one address, so this one is loose); per phone one a minute, 5 an hour, 10 a
# day. Exceeding them is a 429.
ACCOUNT_RATE_LIMITS = {
    "request_login_code": "30/10m/ip,1/1m/key,5/1h/key,10/1d/key",
    "verify_phone": "30/10m/ip,1/1m/key,5/1h/key",
    "change_phone": "1/1m/user,5/1d/user",
    "login": "30/1m/ip",
    "login_failed": "10/1m/ip,5/5m/key",
    "signup": "20/1m/ip",
    "reauthenticate": "10/1m/user",
    "change_password": "5/1m/user",
    "reset_password": "20/1m/ip,5/1m/key",
    "reset_password_from_key": "20/1m/ip",
    "manage_email": "10/1m/user",
}
ACCOUNT_SESSION_REMEMBER = False  # never a persistent cookie
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False  # other sessions die through the session auth hash
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
# Second factor: TOTP (RFC 6238) with recovery codes, mandatory for staff (StaffMFAMiddleware).
MFA_ADAPTER = "apps.accounts.adapters.MFAAdapter"  # encrypts TOTP secrets at rest
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "有奖发票"
MFA_TOTP_PERIOD = 30
MFA_TOTP_DIGITS = 6
# No drift window: a used code is remembered (cache) for one period, which then covers its
# whole validity, so replaying it is refused. A wider window would outlive that memory.
MFA_TOTP_TOLERANCE = 0
MFA_RECOVERY_CODE_COUNT = 10
MFA_TRUST_ENABLED = False  # no "trust this browser": every sign-in asks for the code
MFA_PASSKEY_LOGIN_ENABLED = False

# Consumers' app API (allauth headless): only the "app" client (session token in the
# X-Session-Token header, never a cookie); staff keep the browser pages, so not headless-only.
# Staff accounts are refused here in every flow (apps.accounts.adapters).
HEADLESS_CLIENTS = ("app",)
HEADLESS_ONLY = False
HEADLESS_FRONTEND_URLS: dict[str, str] = {}  # the app links nowhere by e-mail; nothing to map
HEADLESS_SERVE_SPECIFICATION = False
# allauth's session tokens, with the app's idle and absolute limits enforced at every lookup.
HEADLESS_TOKEN_STRATEGY = "apps.accounts.api.authentication.ConsumerSessionTokenStrategy"  # noqa: S105 - a class path
# An app session ends after 7 days without a request, and 30 days after sign-in whatever the
# activity. (The back office's 15-minute idle limit is for staff cookies; a phone app that asked
# for a new SMS code every quarter of an hour would be unusable.)
CONSUMER_SESSION_IDLE_TIMEOUT_SECONDS = 7 * 24 * 3600
CONSUMER_SESSION_ABSOLUTE_TIMEOUT_SECONDS = 30 * 24 * 3600

# The city app's sign-in (OpenID Connect), for consumers in the app only; configured when all
# three variables are set. Its verified identity claims go to the Consumer (encrypted), nothing
# to the User row (apps.accounts.adapters.SocialAccountAdapter).
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never join accounts by e-mail
SOCIALACCOUNT_QUERY_EMAIL = False
SOCIALACCOUNT_STORE_TOKENS = False  # the city app's tokens are not kept
SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {}
CITY_OIDC_SERVER_URL = env.str("CITY_OIDC_SERVER_URL", default="")
CITY_OIDC_CLIENT_ID = env.str("CITY_OIDC_CLIENT_ID", default="")
CITY_OIDC_CLIENT_SECRET = env.str("CITY_OIDC_CLIENT_SECRET", default="")
_city_oidc = (CITY_OIDC_SERVER_URL, CITY_OIDC_CLIENT_ID, CITY_OIDC_CLIENT_SECRET)
if any(_city_oidc) and not all(_city_oidc):
    raise ImproperlyConfigured(
        "The city app sign-in needs all of CITY_OIDC_SERVER_URL, CITY_OIDC_CLIENT_ID and "
        "CITY_OIDC_CLIENT_SECRET (or none of them)."
    )
if all(_city_oidc):
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "city",
                "name": "City app",
                "client_id": CITY_OIDC_CLIENT_ID,
                "secret": CITY_OIDC_CLIENT_SECRET,
                "settings": {
                    "server_url": CITY_OIDC_SERVER_URL,
                    "scope": ["openid", "profile", "phone"],
                },
            }
        ],
    }

# Lockout (django-axes): 5 failures lock the login name and, separately, the client address for
# 30 minutes. The answer to a locked-out attempt is the ordinary failed-login answer.
AXES_ENABLED = True
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=30)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each one locks on its own
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lock lasts 30 minutes, not longer
AXES_RESET_ON_SUCCESS = False
AXES_USERNAME_CALLABLE = "apps.accounts.auth.axes_username"
AXES_CLIENT_IP_CALLABLE = "apps.audit.middleware.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.auth.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["username", "login", "email", "phone", "code", "ip_address"]
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are in the audit trail already

if PRODUCTION:
    DEBUG = False
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_COOKIE_HTTPONLY = True
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Invoice intake --------------------------------------------------------------------------
# Tax-authority verification: "registry" (the imported feed) or "http" (the national service).
TAX_VERIFIER_BACKEND = env.str("TAX_VERIFIER_BACKEND", default="registry")
TAX_VERIFIER_URL = env.str("TAX_VERIFIER_URL", default="")
TAX_VERIFIER_CLIENT_ID = env.str("TAX_VERIFIER_CLIENT_ID", default="")
TAX_VERIFIER_SECRET = env.str("TAX_VERIFIER_SECRET", default="")
TAX_VERIFIER_TIMEOUT = env.float("TAX_VERIFIER_TIMEOUT", default=5.0)
TAX_VERIFY_CACHE_SECONDS = env.int("TAX_VERIFY_CACHE_SECONDS", default=3600)
# Real-name identity verification: "local" (development only) or "http".
IDENTITY_VERIFIER_BACKEND = env.str("IDENTITY_VERIFIER_BACKEND", default="local")
IDENTITY_VERIFIER_URL = env.str("IDENTITY_VERIFIER_URL", default="")
IDENTITY_VERIFIER_CLIENT_ID = env.str("IDENTITY_VERIFIER_CLIENT_ID", default="")
IDENTITY_VERIFIER_SECRET = env.str("IDENTITY_VERIFIER_SECRET", default="")
IDENTITY_VERIFIER_TIMEOUT = env.float("IDENTITY_VERIFIER_TIMEOUT", default=5.0)
# SMS: console (development) or "apps.accounts.sms.HttpSMSBackend".
SMS_BACKEND = env.str("SMS_BACKEND", default="apps.accounts.sms.ConsoleSMSBackend")
SMS_GATEWAY_URL = env.str("SMS_GATEWAY_URL", default="")
SMS_GATEWAY_CLIENT_ID = env.str("SMS_GATEWAY_CLIENT_ID", default="")
SMS_GATEWAY_SECRET = env.str("SMS_GATEWAY_SECRET", default="")
SMS_GATEWAY_TIMEOUT = env.float("SMS_GATEWAY_TIMEOUT", default=5.0)
# Payment gateway (prize transfers, docs/adapters.md): no embedded default pays anybody; for
# development point these at `python -m tools.sandbox.payment_gateway`.
PAYMENT_GATEWAY_BASE_URL = env.str("PAYMENT_GATEWAY_BASE_URL", default="")
PAYMENT_GATEWAY_CLIENT_ID = env.str("PAYMENT_GATEWAY_CLIENT_ID", default="")
PAYMENT_GATEWAY_SECRET = env.str("PAYMENT_GATEWAY_SECRET", default="")
PAYMENT_GATEWAY_CALLBACK_SECRET = env.str("PAYMENT_GATEWAY_CALLBACK_SECRET", default="")
PAYMENT_GATEWAY_TIMEOUT = env.float("PAYMENT_GATEWAY_TIMEOUT", default=5.0)
PAYMENT_GATEWAY_NOTIFY_URL = env.str("PAYMENT_GATEWAY_NOTIFY_URL", default="")
# Government-app exchange (docs/integration.md): push endpoint (HTTPS; http only to 127.0.0.1),
# key id and HMAC secret; nothing is pushed while the URL or secret is empty.
REPORTING_PUSH_URL = env.str("REPORTING_PUSH_URL", default="")
REPORTING_PUSH_KEY_ID = env.str("REPORTING_PUSH_KEY_ID", default="lotteryinvoice")
REPORTING_PUSH_SECRET = env.str("REPORTING_PUSH_SECRET", default="")
REPORTING_PUSH_TIMEOUT = env.float("REPORTING_PUSH_TIMEOUT", default=5.0)
REPORTING_PUSH_MAX_ATTEMPTS = env.int("REPORTING_PUSH_MAX_ATTEMPTS", default=12)
# Rollups brought up to date by a Celery drain a second after each change (queued), instead of
# inside every submission's transaction (docs/benchmarks.md, issue 11; apps/reporting/rollups.py).
REPORTING_ROLLUPS_QUEUED = env.bool("REPORTING_ROLLUPS_QUEUED", default=PRODUCTION)
REPORTING_ROLLUPS_DRAIN_DELAY = env.int("REPORTING_ROLLUPS_DRAIN_DELAY", default=1)
REPORTING_SMALL_CELL_THRESHOLD = env.int("REPORTING_SMALL_CELL_THRESHOLD", default=10)
REPORTING_PARTNER_RATE = env.str("REPORTING_PARTNER_RATE", default="60/min")
# Pending invoices ("not found yet" at the tax authority): back-off and give-up time.
INVOICE_PENDING_MAX_HOURS = env.int("INVOICE_PENDING_MAX_HOURS", default=48)
# 1 h, 2 h, 4 h, 8 h, 12 h …: about five checks a day, the services' quota per invoice.
INVOICE_RECHECK_BASE_MINUTES = env.int("INVOICE_RECHECK_BASE_MINUTES", default=60)
INVOICE_RECHECK_MAX_MINUTES = env.int("INVOICE_RECHECK_MAX_MINUTES", default=720)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=48)
# Database connections that land a tax-authority feed's slices side by side (PostgreSQL): one
# per core the database server can spare for a bulk load (docs/benchmarks.md).
FEED_IMPORT_WORKERS = env.int("FEED_IMPORT_WORKERS", default=2)
# API rate limits (DRF syntax "N/sec|min|hour|day"), per signed-in user, per IP, per submit.
API_THROTTLE_RATES = {
    "consumer": env.str("API_THROTTLE_CONSUMER", default="120/min"),
    "ip": env.str("API_THROTTLE_IP", default="300/min"),
    "invoice_submit": env.str("API_THROTTLE_SUBMIT", default="20/min"),
    "identity_verify": env.str("API_THROTTLE_IDENTITY", default="5/day"),
}

# Log lines: "json" (one object per line; the production default) or "plain" (development).
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'plain'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "apps.common.logging.PlainFormatter"},
        # One JSON object per line with request_id/task_id (apps.common.logging.JsonFormatter).
        "json": {"()": "apps.common.logging.JsonFormatter"},
    },
    "filters": {
        "redact": {"()": "apps.common.logging.RedactPersonalDataFilter"},
        "request_context": {"()": "apps.common.logging.RequestContextFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact", "request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # runserver's request lines: through our scrubbing handler, not Django's default one.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

"""The project's settings plus the bench app. Everything else is production-like: the same
middleware, authentication, throttles (rates from the environment) and database pool."""

from lotteryinvoice.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "loadapp"]  # noqa: F405
ROOT_URLCONF = "loadapp.urls"

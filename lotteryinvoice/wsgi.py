"""WSGI entry point (gunicorn lotteryinvoice.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lotteryinvoice.settings")
application = get_wsgi_application()

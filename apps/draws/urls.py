"""Public results of periodic draws (no login). Mounted at `draws/` in lotteryinvoice/urls.py."""

from django.urls import path

from . import views

app_name = "draws"

urlpatterns = [
    path("", views.draw_list, name="list"),
    path("verify/", views.how_to_verify, name="how_to_verify"),
    path("verify/verify_draw.py", views.verifier_script, name="verifier"),
    path("<str:code>/", views.draw_detail, name="detail"),
    path("<str:code>/bundle.json", views.draw_bundle_json, name="bundle"),
    path("<str:code>/tickets.csv", views.draw_tickets_csv, name="tickets"),
]

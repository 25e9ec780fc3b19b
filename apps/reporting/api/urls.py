from django.urls import path

from . import views

urlpatterns = [
    path("stats/invoices/", views.InvoiceStatsView.as_view(), name="partner-stats-invoices"),
    path("stats/awards/", views.AwardStatsView.as_view(), name="partner-stats-awards"),
]

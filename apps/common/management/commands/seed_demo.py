"""`manage.py seed_demo`: the Zhengzhou 2026 demo, idempotent (see `apps.common.demo`)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.common.demo import CAMPAIGN_CODE, DemoError, DemoOptions, seed_demo

DEFAULTS = DemoOptions()


class Command(BaseCommand):
    help = (
        f"Create the Zhengzhou demo (campaign {CAMPAIGN_CODE}, merchants, consumers, invoices, "
        "tax registry, one staff user per role). Idempotent: a second run creates nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--merchants", type=int, default=DEFAULTS.merchants)
        parser.add_argument("--consumers", type=int, default=DEFAULTS.consumers)
        parser.add_argument("--invoices", type=int, default=DEFAULTS.invoices)
        parser.add_argument(
            "--seed", type=int, default=DEFAULTS.seed, help="same seed, same demo (default 2026)"
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="seed even though DJANGO_ENV=production (never on real data)",
        )

    def handle(self, *args, **options):
        if getattr(settings, "PRODUCTION", False) and not options["allow_production"]:
            raise CommandError(
                "Refusing to seed demo data with DJANGO_ENV=production (--allow-production)."
            )
        for name in ("merchants", "consumers", "invoices"):
            if options[name] < 0:
                raise CommandError(f"--{name} cannot be negative.")
        demo_options = DemoOptions(
            merchants=options["merchants"],
            consumers=options["consumers"],
            invoices=options["invoices"],
            seed=options["seed"],
        )
        try:
            result = seed_demo(demo_options)
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(result.render())
        # Draws on top of the entries: an instant pool with awards and a finalised periodic draw.
        from apps.common.demo import CAMPAIGN_CODE, reference_time
        from apps.draws.demo import seed_draws_demo
        from apps.invoices.models import Campaign

        now = reference_time(demo_options, Campaign.objects.get(code=CAMPAIGN_CODE))
        draws = seed_draws_demo(now=now, seed=options["seed"])
        self.stdout.write(
            f"  draws:             {draws['periodic_draws']} periodic draw(s) created, "
            f"{draws['instant_pools']} instant pool(s), {draws['instant_awards']} instant awards"
        )
        # The case desk: 2026 holiday calendar, queues, categories, FAQ and a few cases.
        from apps.complaints.demo import seed_complaints_demo

        complaints = seed_complaints_demo(now=now)
        self.stdout.write(
            f"  complaints:        {complaints['cases']} case(s), {complaints['categories']} "
            f"categorie(s), {complaints['calendar_days']} calendar day(s) created"
        )
        from apps.content.demo import seed_content_demo  # publicity articles (/info/)

        self.stdout.write(f"  publicity:         {seed_content_demo(now=now)} article(s) created")
        from apps.reporting.demo import rebuild_for_demo  # the dashboard's figures

        self.stdout.write(f"  statistics:        {rebuild_for_demo()}")
        if options["verbosity"] >= 2:
            for name, seconds in result.phases.items():
                self.stdout.write(f"  {name}: {seconds:.1f} s")

"""Demo data of the case desk (`manage.py seed_demo`): the 2026 holiday calendar of mainland
China, two queues with the demo handlers and supervisor, categories with SLAs, canned replies,
FAQ articles and a handful of cases in different states.

Idempotent (found again by code, date, slug and hotline ticket) and built through the services,
so every demo case has its history and audit records like a real one.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import Group
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.roles import ROLES_BY_CODE

from . import services
from .choices import CaseChannel, CaseKind, CaseOutcome, CasePriority
from .models import (
    CannedReply,
    Case,
    CaseCategory,
    CaseQueue,
    CaseQueueMembership,
    FaqArticle,
    WorkCalendarDay,
)

# 国务院办公厅关于2026年部分节假日安排的通知 (4 November 2025): holidays that fall on weekdays
# (False) and the weekend days that are working days (True, 调休上班).
HOLIDAYS_2026: tuple[tuple[date, bool, str], ...] = (
    (date(2026, 1, 1), False, "元旦"),
    (date(2026, 1, 2), False, "元旦"),
    (date(2026, 1, 4), True, "元旦调休上班"),
    (date(2026, 2, 14), True, "春节调休上班"),
    (date(2026, 2, 16), False, "春节"),
    (date(2026, 2, 17), False, "春节"),
    (date(2026, 2, 18), False, "春节"),
    (date(2026, 2, 19), False, "春节"),
    (date(2026, 2, 20), False, "春节"),
    (date(2026, 2, 23), False, "春节"),
    (date(2026, 2, 28), True, "春节调休上班"),
    (date(2026, 4, 6), False, "清明节"),
    (date(2026, 5, 1), False, "劳动节"),
    (date(2026, 5, 4), False, "劳动节"),
    (date(2026, 5, 5), False, "劳动节"),
    (date(2026, 5, 9), True, "劳动节调休上班"),
    (date(2026, 6, 19), False, "端午节"),
    (date(2026, 9, 20), True, "国庆节调休上班"),
    (date(2026, 9, 25), False, "中秋节"),
    (date(2026, 10, 1), False, "国庆节"),
    (date(2026, 10, 2), False, "国庆节"),
    (date(2026, 10, 5), False, "国庆节"),
    (date(2026, 10, 6), False, "国庆节"),
    (date(2026, 10, 7), False, "国庆节"),
    (date(2026, 10, 10), True, "国庆节调休上班"),
)

QUEUES = (
    ("consult", "咨询服务组", "咨询与一般问题"),
    ("complaint", "投诉处理组", "投诉、拒开发票举报、申诉与奖金问题"),
)
# code, name, kind, queue, priority, first response (working hours), resolution (working days)
CATEGORIES = (
    ("consult-rules", "活动规则咨询", CaseKind.CONSULTATION, "consult", CasePriority.NORMAL, 4, 2),
    (
        "consult-invoice",
        "发票上传咨询",
        CaseKind.CONSULTATION,
        "consult",
        CasePriority.NORMAL,
        4,
        2,
    ),
    ("complaint-service", "服务投诉", CaseKind.COMPLAINT, "complaint", CasePriority.NORMAL, 8, 5),
    ("refusal", "商户拒开发票", CaseKind.MERCHANT_REFUSAL, "complaint", CasePriority.HIGH, 4, 5),
    ("appeal-rejection", "审核驳回申诉", CaseKind.APPEAL, "complaint", CasePriority.NORMAL, 8, 5),
    ("prize-payout", "奖金发放问题", CaseKind.PRIZE_PROBLEM, "complaint", CasePriority.HIGH, 4, 3),
)
FAQ = (
    (
        "which-invoices",
        "哪些发票可以参与有奖发票活动？",
        "在郑州市内消费、行业属于活动范围、抬头为本人实名的数电普票，价税合计不低于100元，"
        "且开票日期在活动期内的发票可以参与。专票、代开发票、单位抬头发票不能参与。",
        "consult-rules",
    ),
    (
        "when-paid",
        "中奖后多久能收到奖金？",
        "小额即时奖励立即发放；较大金额的奖励在发票复核（开票后7至15天）通过后发放。"
        "定期开奖的奖金在公示期结束后10个工作日内发放到本人实名账户。",
        "prize-payout",
    ),
    (
        "merchant-refuses",
        "商户拒绝开具发票怎么办？",
        "请在“我的-咨询投诉”中选择“商户拒开发票”，填写商户名称、地址和消费时间，"
        "也可拨打12345热线。查实后将依法处理。",
        "refusal",
    ),
)
CANNED = (
    ("已收到，正在核实", "您好，您反映的问题已收到，我们正在核实，将尽快答复您。", ""),
    ("请补充材料", "您好，请补充消费凭证（小票或付款记录）的照片，以便我们核实。", ""),
    (
        "拒开发票已转办",
        "您好，您举报的商户拒开发票问题已转税务部门核查，查实后将依法处理并告知您结果。",
        CaseKind.MERCHANT_REFUSAL,
    ),
)
# hotline ticket, category, subject, caller, phone, hours before now, what happens
DEMO_CASES = (
    ("12345-2026-DEMO-0001", "consult-rules", "专票能否参与活动", "王某", "13800000001", 3, "new"),
    (
        "12345-2026-DEMO-0002",
        "refusal",
        "某饭店结账时拒开发票",
        "李某",
        "13800000002",
        30,
        "substantiated",
    ),
    (
        "12345-2026-DEMO-0003",
        "prize-payout",
        "中奖后一直未到账",
        "赵某",
        "13800000003",
        50,
        "awaiting",
    ),
    (
        "12345-2026-DEMO-0004",
        "complaint-service",
        "上传发票页面打不开",
        "周某",
        "037160000004",
        6,
        "replied",
    ),
    (
        "12345-2026-DEMO-0005",
        "appeal-rejection",
        "发票被驳回要求复核",
        "孙某",
        "13800000005",
        100,
        "overdue",
    ),
)


def seed_calendar() -> int:
    existing = set(WorkCalendarDay.objects.values_list("date", flat=True))
    new = [
        WorkCalendarDay(date=d, is_workday=w, note=n)
        for d, w, n in HOLIDAYS_2026
        if d not in existing
    ]
    WorkCalendarDay.objects.bulk_create(new)
    return len(new)


def _staff(username: str, role_code: str) -> User:
    user, created = User.objects.get_or_create(
        username=username, defaults={"is_staff": True, "password": "!"}
    )
    if created:
        user.groups.add(Group.objects.get(name=ROLES_BY_CODE[role_code].group_name))
    return user


def seed_complaints_demo(*, now: datetime | None = None) -> dict[str, int]:
    """Create what is missing of the case-desk demo. Returns counts of what was created."""
    now = now or timezone.now()
    created = {"calendar_days": seed_calendar(), "queues": 0, "categories": 0, "cases": 0}
    handlers = [
        _staff("demo_complaint_handler", "complaint_handler"),
        _staff("demo_complaint_handler_2", "complaint_handler"),
    ]
    supervisor = _staff("demo_complaint_supervisor", "complaint_supervisor")
    queues = {}
    for code, name, description in QUEUES:
        queue, made = CaseQueue.objects.get_or_create(
            code=code, defaults={"name": name, "description": description}
        )
        queues[code] = queue
        created["queues"] += made
        for user in handlers:
            CaseQueueMembership.objects.get_or_create(queue=queue, user=user)
        CaseQueueMembership.objects.get_or_create(
            queue=queue, user=supervisor, defaults={"is_supervisor": True, "available": False}
        )
    categories = {}
    for code, name, kind, queue_code, priority, hours, days in CATEGORIES:
        category, made = CaseCategory.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "queue": queues[queue_code],
                "default_priority": priority,
                "first_response_hours": Decimal(hours),
                "resolution_days": Decimal(days),
            },
        )
        categories[code] = category
        created["categories"] += made
    for slug, title, body, category_code in FAQ:
        FaqArticle.objects.get_or_create(
            slug=slug,
            defaults={
                "title": title,
                "body": body,
                "category": categories[category_code],
                "is_published": True,
                "published_at": now,
            },
        )
    for title, body, kind in CANNED:
        CannedReply.objects.get_or_create(title=title, defaults={"body": body, "kind": kind})
    for ticket, category_code, subject, caller, phone, hours_ago, fate in DEMO_CASES:
        if Case.objects.filter(hotline_ticket=ticket).exists():
            continue
        case = services.case_open(
            kind=categories[category_code].kind,
            category=categories[category_code],
            channel=CaseChannel.HOTLINE,
            actor=supervisor,
            subject=subject,
            description=f"12345热线转办：{subject}。",
            caller_name=caller,
            caller_phone=phone,
            hotline_ticket=ticket,
            opened_at=now - timedelta(hours=hours_ago),
        )
        created["cases"] += 1
        _play(case, fate, handler=case.assignee or handlers[0])
    return created


def _play(case: Case, fate: str, *, handler: User) -> None:
    """Move a demo case along its story, through the services."""
    from apps.merchants.models import Merchant

    if fate in ("new", "overdue"):
        return
    services.case_take(case=case, actor=handler)
    if fate == "replied":
        services.case_reply(case=case, actor=handler, body="您好，技术人员正在排查，请稍后再试。")
    elif fate == "awaiting":
        services.case_reply(
            case=case,
            actor=handler,
            body="您好，请提供中奖记录截图和收款账户后四位，以便核实。",
            await_consumer=True,
        )
    elif fate == "substantiated":
        merchant = Merchant.objects.order_by("pk").first()
        if merchant is not None:
            services.case_link(case=case, actor=handler, merchant=merchant)
        services.case_note(case=case, actor=handler, body="已电话核实，商户承认未开票。")
        services.case_resolve(
            case=case,
            actor=handler,
            outcome=CaseOutcome.SUBSTANTIATED if merchant else CaseOutcome.REFERRED,
            summary="经核查情况属实，已责令商户补开发票并移交税务部门处理。",
        )

"""Publicity demo for `manage.py seed_demo`: one published article of each kind (the winner
story with a recorded, masked-name consent and a poster), written by one campaign
administrator and approved by another, all through the services. Idempotent by title."""

from __future__ import annotations

import io
from datetime import datetime

from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image, ImageDraw

from apps.accounts.models import User
from apps.accounts.roles import ROLES_BY_CODE

from . import services
from .choices import ArticleKind, ConsentScope
from .models import Article

ARTICLES = (
    (
        ArticleKind.POLICY,
        "郑州市有奖发票活动政策解读",
        "哪些消费可以参与、奖金怎么发、要不要交税，一文读懂。",
        "<h2>哪些发票可以参与</h2><p>在郑州市零售、餐饮、住宿、文化艺术、娱乐、体育、旅游和居民服务"
        "等行业消费，取得以本人名义开具的数电普票，价税合计满100元，即可在活动期间上传参与抽奖。"
        "</p><h2>奖金要交税吗</h2><p>单张发票奖金不超过800元的，暂免征收个人所得税；超过800元的，"
        "按“偶然所得”代扣代缴20%的个人所得税。</p>",
    ),
    (
        ArticleKind.GUIDE,
        "三步上传发票参与抽奖",
        "实名认证、扫码上传、查看结果。",
        "<ol><li>在“郑好办”完成实名认证。</li><li>扫描发票上的二维码，或手动录入20位发票号码。</li>"
        "<li>在“我的发票”中查看审核结果和中奖情况。</li></ol>"
        "<p>小额奖金即时到账；较大奖金在发票复核后发放。</p>",
    ),
    (
        ArticleKind.NOTICE,
        "关于定期开奖结果公示的通知",
        "每期开奖结果公示7天。",
        "<p>定期开奖在公证处监督下进行，中奖名单（姓名已脱敏）在本站“开奖结果”公示7天，"
        "公示期满后发放奖金。</p>",
    ),
)
STORY = (
    "买菜也能中大奖：退休教师的惊喜",
    "一张菜市场的发票，抽中了300元。",
    "<p>王先生在家门口的菜市场买菜后，用手机上传了发票，几天后收到了中奖通知。</p>",
    "<blockquote>“没想到买菜也能中奖，以后一定记得要发票。”</blockquote>",
)


def _staff(username: str) -> User:
    user, created = User.objects.get_or_create(
        username=username, defaults={"is_staff": True, "password": "!"}
    )
    if created:
        user.groups.add(Group.objects.get(name=ROLES_BY_CODE["campaign_admin"].group_name))
    return User.objects.get(pk=user.pk)


def _poster() -> SimpleUploadedFile:
    image = Image.new("RGB", (800, 450), (183, 28, 28))
    ImageDraw.Draw(image).rectangle((40, 40, 760, 410), outline=(255, 255, 255), width=10)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return SimpleUploadedFile("poster.png", out.getvalue(), content_type="image/png")


def seed_content_demo(*, now: datetime | None = None) -> int:
    """Create the missing demo articles; returns how many were created."""
    now = now or timezone.now()
    writer = _staff("demo_campaign_admin")
    reviewer = _staff("demo_campaign_admin_2")

    def go_live(article):
        services.article_submit(article=article, actor=writer)
        services.article_approve(article=article, actor=reviewer)
        services.article_publish(article=article, actor=reviewer)

    created = 0
    for kind, title, summary, body in ARTICLES:
        if Article.objects.filter(title=title).exists():
            continue
        go_live(
            services.article_create(
                kind=kind, title=title, summary=summary, body=body, actor=writer
            )
        )
        created += 1
    title, summary, first, quote = STORY
    if not Article.objects.filter(title=title).exists():
        story = services.article_create(
            kind=ArticleKind.WINNER_STORY, title=title, summary=summary, body=first, actor=writer
        )
        poster = services.article_image_add(
            article=story,
            upload=_poster(),
            alt_text="中奖者在菜市场展示发票的宣传海报",
            actor=writer,
        )
        services.article_update(
            article=story,
            actor=writer,
            body=f'{first}<img src="{poster.path}" alt="{poster.alt_text}" width="800" '
            f'height="450">{quote}',
        )
        services.consent_record(
            article=story,
            winner_name="王建国",
            scope=ConsentScope.MASKED_NAME,
            consented_at=now,
            evidence="演示同意书 DEMO-001",
            actor=reviewer,
        )
        go_live(story)
        created += 1
    return created
